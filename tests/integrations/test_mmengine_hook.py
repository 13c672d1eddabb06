"""MLDebuggerHook on real MMEngine Runners (a boring 2-D detector; PointPillars and RetinaNet run
in integrations/mmdet3d and integrations/mmdet)."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mmengine", reason="needs MMEngine: pip install 'ml-debugger[mmengine]'")
pytest.importorskip("mmdet", reason="needs MMDetection: pip install 'ml-debugger[mmengine]'")

from mmengine.config import Config
from mmengine.utils import import_modules_from_strings

from ml_debugger.exceptions import ConfigurationError, TraceValidationError
from ml_debugger.integrations.mmengine import MLDebuggerHook
from ml_debugger.integrations.mmengine._sampling import SamplePlan
from ml_debugger.store import LocalStore
from tests.integrations.mmengine_boring import GT_ORIGINAL, ORIGINAL, BoringDetector, boring_runner

N_VAL = 5


def traces(home: Path, version: str = "v1"):
    return LocalStore(home).read_traces("boring", version, None).to_pandas()


def test_the_config_lines_make_the_hook_buildable_from_mmdet_and_mmdet3d_registries() -> None:
    cfg = Config(dict(
        custom_imports=dict(imports=["ml_debugger.integrations.mmengine"], allow_failed_imports=False),
        custom_hooks=[dict(type="MLDebuggerHook", model_name="pointpillars", version_name="v1")],
    ))
    import_modules_from_strings(**cfg.custom_imports)
    from mmdet.registry import HOOKS as MMDET_HOOKS

    registries = [MMDET_HOOKS]
    try:
        from mmdet3d.registry import HOOKS as MMDET3D_HOOKS
    except ImportError:  # MMDetection3D needs mmcv's ops; the 2-D registry is still checked
        pass
    else:
        registries.append(MMDET3D_HOOKS)
    for registry in registries:
        hook = registry.build(cfg.custom_hooks[0])
        assert isinstance(hook, MLDebuggerHook) and (hook.model_name, hook.version_name) == ("pointpillars", "v1")


def test_validation_and_test_loops_are_traced_per_epoch(tmp_path: Path, mld_home: Path) -> None:
    runner = boring_runner(tmp_path, [MLDebuggerHook("boring", "v1")])
    runner.train()
    runner.test()
    rows = traces(mld_home)
    val, test = rows[rows["dataset_type"] == "val"], rows[rows["dataset_type"] == "test"]
    assert val.groupby("epoch")["input_id"].apply(list).to_dict() == {
        1: [str(i) for i in range(N_VAL)], 2: [str(i) for i in range(N_VAL)],
    }, "runner.epoch after each training epoch; ids are dataset indices"
    assert not val["final_validation"].any() and val["global_step"].tolist() == [3] * N_VAL + [6] * N_VAL
    assert test["epoch"].tolist() == [2] * N_VAL and test["final_validation"].all()
    assert test["global_step"].isna().all()
    first = val.iloc[0]
    np.testing.assert_allclose(np.stack(first["gt_boxes"]), [GT_ORIGINAL])  # in the original image
    assert (first["image_width"], first["image_height"]) == ORIGINAL
    assert list(first["label_names"]) == ["thing", "other"]
    assert LocalStore(mld_home).committed_epochs("boring", "v1") == [1, 2]


def test_a_validation_run_without_training_is_epoch_0_and_final(tmp_path: Path, mld_home: Path) -> None:
    boring_runner(tmp_path, [MLDebuggerHook("boring", "v1", task="detection2d")], test=False).val()
    rows = traces(mld_home)
    assert rows["epoch"].tolist() == [0] * N_VAL and rows["final_validation"].all()
    assert rows["global_step"].isna().all()


def test_iteration_based_training_tags_rows_with_the_iteration(tmp_path: Path, mld_home: Path) -> None:
    boring_runner(tmp_path, [MLDebuggerHook("boring", "v1")], iterations=4, test=False).train()
    assert traces(mld_home).groupby("epoch").size().to_dict() == {2: N_VAL, 4: N_VAL}


def test_interval_and_an_untraced_test_loop(tmp_path: Path, mld_home: Path) -> None:
    runner = boring_runner(tmp_path, [MLDebuggerHook("boring", "v1", interval=2, test_dataset_type=None)])
    runner.train()
    runner.test()
    rows = traces(mld_home)
    assert set(rows["epoch"]) == {2} and set(rows["dataset_type"]) == {"val"}


def test_a_tracing_failure_warns_once_and_training_goes_on(tmp_path: Path, mld_home: Path) -> None:
    runner = boring_runner(tmp_path, [MLDebuggerHook("boring", "v1")], model=BoringDetector(inverted=True))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runner.train()
    reported = [w for w in caught if "ml-debugger (mmengine)" in str(w.message)]
    assert len(reported) == 1 and "x2 < x1" in str(reported[0].message)
    assert runner.epoch == 2, "training finished"


def test_strict_raises_the_tracing_failure(tmp_path: Path) -> None:
    runner = boring_runner(tmp_path, [MLDebuggerHook("boring", "v1", strict=True)], model=BoringDetector(inverted=True))
    with pytest.raises(TraceValidationError, match="x2 < x1"):
        runner.train()


def test_bad_options_are_named() -> None:
    with pytest.raises(ConfigurationError, match="one of detection3d, detection2d; got 'segmentation'"):
        MLDebuggerHook("m", "v1", task="segmentation")
    with pytest.raises(ConfigurationError, match="interval"):
        MLDebuggerHook("m", "v1", interval=-1)
    with pytest.raises(ConfigurationError, match="model_name"):
        MLDebuggerHook("a/b", "v1")


@pytest.mark.parametrize(("size", "world"), [(5, 2), (7, 3), (6, 2), (1, 4)])
def test_sample_plan_drops_exactly_the_padding_default_sampler_adds(size: int, world: int) -> None:
    total = -(-size // world) * world
    padded = (list(range(size)) * (total // size + 1))[:total]  # DefaultSampler's round_up
    seen = []
    for rank in range(world):
        plan, mine = SamplePlan(size, rank, world, ordered=True), padded[rank:total:world]
        for start in range(0, len(mine), 2):  # batches of 2
            keep, indices = plan.take(len(mine[start:start + 2]))
            assert indices.tolist() == [i for i, k in zip(mine[start:start + 2], keep) if k]
            seen += indices.tolist()
    assert sorted(seen) == list(range(size))


def test_subset_keeps_the_same_samples_of_inputs_and_data_samples() -> None:
    import torch

    from ml_debugger.integrations.mmengine._batches import subset

    points = [torch.full((3, 4), float(i)) for i in range(3)]
    data_batch = {"inputs": {"points": points, "img": torch.zeros(3, 2, 2)}, "data_samples": ["a", "b", "c"]}
    kept, outputs = subset(data_batch, ["A", "B", "C"], np.array([True, False, True]))
    assert [p[0, 0].item() for p in kept["inputs"]["points"]] == [0.0, 2.0] and kept["inputs"]["img"].shape[0] == 2
    assert kept["data_samples"] == ["a", "c"] and outputs == ["A", "C"]
    with pytest.raises(TraceValidationError, match="returned 2 data samples for a batch of 3"):
        subset(data_batch, ["A", "B"], np.array([True, False, True]))


def test_importing_without_mmengine_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['mmengine'] = None\n"
        "try:\n    import ml_debugger.integrations.mmengine\n"
        "except ImportError as error:\n    print(error)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "needs mmengine" in out.stdout and "pip install 'ml-debugger[mmengine]'" in out.stdout


def test_ground_truth_of_classes_left_out_of_the_metainfo_is_dropped() -> None:
    from ml_debugger.integrations.mmengine._rows3d import known_classes

    frame = {
        "boxes_3d": np.arange(21.0).reshape(3, 7), "labels_3d": np.array([0, -1, 2]), "num_points": np.array([5, 6, 7]),
    }
    kept = known_classes(frame)
    assert kept["labels_3d"].tolist() == [0, 2] and kept["num_points"].tolist() == [5, 7]
    np.testing.assert_array_equal(kept["boxes_3d"], frame["boxes_3d"][[0, 2]])
