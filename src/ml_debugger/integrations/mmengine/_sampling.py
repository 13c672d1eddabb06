"""Which dataset sample each item of an evaluation batch is, and which items are sampler padding.

MMEngine's ``DefaultSampler`` (like torch's ``DistributedSampler``) pads the index list to a
multiple of the world size by repeating its first indices, then gives rank ``r`` the positions
``r, r + world_size, ...``. The ``j``-th sample a rank evaluates therefore sits at position
``r + j * world_size`` of the padded list; positions at or past the dataset's length are padding.
MMEngine's ``collect_results`` drops the same positions when it gathers the evaluator's results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from mmengine.dataset import DefaultSampler
from torch.utils.data import DistributedSampler, SequentialSampler


@dataclass
class SamplePlan:
    """One rank's place in an evaluation loop over ``dataset_size`` samples.

    Attributes:
        ordered: positions are dataset indices (the sampler does not shuffle).
        seen: samples of this epoch handed out so far (padding included).
    """

    dataset_size: int
    rank: int
    world_size: int
    ordered: bool
    seen: int = 0

    def take(self, n: int) -> tuple[np.ndarray, np.ndarray | None]:
        """For the next ``n`` samples: which to keep (not padding) and, when ordered, their dataset indices."""
        positions = self.rank + self.world_size * np.arange(self.seen, self.seen + n, dtype=np.int64)
        self.seen += n
        keep = positions < self.dataset_size
        return keep, positions[keep] if self.ordered else None


def plan_of(loader: Any) -> SamplePlan | None:
    """The sample plan of an evaluation ``DataLoader``, or None when its sampler is of another kind
    (then nothing is dropped here and the evaluator's de-duplication removes repeats)."""
    sampler, dataset = getattr(loader, "sampler", None), getattr(loader, "dataset", None)
    if dataset is None or not hasattr(dataset, "__len__"):
        return None
    if isinstance(sampler, DefaultSampler):
        return SamplePlan(len(dataset), sampler.rank, sampler.world_size, ordered=not sampler.shuffle)
    if isinstance(sampler, DistributedSampler):
        return SamplePlan(len(dataset), sampler.rank, sampler.num_replicas, ordered=not sampler.shuffle)
    if isinstance(sampler, SequentialSampler):
        return SamplePlan(len(dataset), 0, 1, ordered=True)
    return None
