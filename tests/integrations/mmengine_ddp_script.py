"""A 2-process CPU DDP run (gloo) of a boring MMEngine detector traced by MLDebuggerHook; run by
test_mmengine_ddp.py with ``<work_dir> <port>``.

The process group is set up here and the model wrapped in ``MMDistributedDataParallel`` before
the Runner gets it (MMEngine's own ``launcher='pytorch'`` calls ``torch.cuda.set_device``). Five
validation images on two ranks: DefaultSampler pads rank 1 with a repeat of image 0.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.model import MMDistributedDataParallel

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from ml_debugger.integrations.mmengine import MLDebuggerHook  # noqa: E402
from tests.integrations.mmengine_boring import BoringDetector, boring_runner  # noqa: E402

WORLD = 2


def run(rank: int, work_dir: str, port: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    model = MMDistributedDataParallel(module=BoringDetector(), device_ids=None)
    boring_runner(Path(work_dir) / f"rank{rank}", [MLDebuggerHook("boring-ddp", "v1")], model=model, test=False).train()
    dist.destroy_process_group()


if __name__ == "__main__":
    mp.spawn(run, args=(sys.argv[1], sys.argv[2]), nprocs=WORLD)
