"""Frames of every input form, their hashes over all modalities, and points-in-box counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ml_debugger.exceptions import TraceValidationError
from ml_debugger.training.detection3d._points import count_points_in_boxes, frames_of, hash_frames


def test_points_in_a_rotated_box_by_hand() -> None:
    # A 4 m long (along the heading), 2 m wide, 2 m tall box at (10, 5, 1) heading 90 degrees:
    # it spans x in (9, 11), y in (3, 7), z in [0, 2].
    box = np.array([[10.0, 5.0, 1.0, 2.0, 4.0, 2.0, np.pi / 2]])
    points = np.array(
        [
            [10.0, 5.0, 1.0],  # centre
            [10.9, 6.9, 0.1],  # near a corner, inside
            [10.0, 7.5, 1.0],  # beyond the length
            [11.5, 5.0, 1.0],  # beyond the width
            [10.0, 5.0, 2.5],  # above
            [9.5, 3.5, 2.0],  # on the top face: inside (z is inclusive)
            [np.nan, 5.0, 1.0],  # NaN points are never inside
        ],
        dtype=np.float32,
    )
    assert count_points_in_boxes(points, box).tolist() == [3]
    assert count_points_in_boxes(points, np.zeros((0, 7))).shape == (0,)
    assert count_points_in_boxes(np.zeros((0, 4)), box).tolist() == [0]


def test_counts_equal_mmcv_points_in_boxes() -> None:
    ops = pytest.importorskip("mmcv.ops", reason="MMCV with ops is not installed")
    rng = np.random.default_rng(0)
    points = rng.uniform([-30, -30, -3], [30, 30, 3], size=(50_000, 3)).astype(np.float32)
    n = 80
    boxes = np.column_stack(
        [
            rng.uniform(-33, 33, (n, 2)),
            rng.uniform(-2, 1, n),
            rng.uniform(0.5, 3, n),
            rng.uniform(0.5, 12, n),
            rng.uniform(1, 3, n),
            rng.uniform(-4, 4, n),
        ]
    )
    # MMCV takes bottom-centred (x, y, z, x_size along the heading, y_size, z_size, yaw).
    mmcv_boxes = np.column_stack(
        [boxes[:, :2], boxes[:, 2] - boxes[:, 5] / 2, boxes[:, 4], boxes[:, 3], boxes[:, 5], boxes[:, 6]]
    )
    inside = ops.points_in_boxes_cpu(torch.tensor(points[None]), torch.tensor(mmcv_boxes[None], dtype=torch.float32))
    counts = count_points_in_boxes(points, boxes)
    np.testing.assert_array_equal(counts, inside[0].sum(0).numpy())
    assert counts.sum() > 1000


def test_every_input_form_gives_its_frames() -> None:
    a, b = torch.rand(50, 4), torch.rand(60, 5)
    assert [f.points.shape for f in frames_of(a)] == [(50, 4)]
    assert [f.points.shape for f in frames_of([a, b])] == [(50, 4), (60, 5)]
    assert [f.points.shape for f in frames_of(torch.rand(3, 20, 4))] == [(20, 4)] * 3
    images = torch.rand(2, 6, 3, 8, 8)
    frames = frames_of({"points": [a, b], "img": images, "img_metas": [{"token": "x"}, {"token": "y"}]})
    assert [[k for k, _ in f.modalities] for f in frames] == [["img", "points"]] * 2
    np.testing.assert_array_equal(frames[1].modalities[0][1], images[1].numpy())
    camera_only = frames_of({"img": [images[0]], "img_metas": [[{"token": "x"}]]})  # test-time-augmentation lists
    assert len(camera_only) == 1 and camera_only[0].points is None
    batch = {"inputs": {"points": [a, b]}, "data_samples": [object(), object()]}  # an MMEngine data batch
    assert [f.points.shape for f in frames_of(batch)] == [(50, 4), (60, 5)]


def test_the_hash_covers_every_modality_of_its_own_frame() -> None:
    points = [torch.rand(50, 4, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    images = torch.rand(2, 6, 3, 8, 8, generator=torch.Generator().manual_seed(9))
    base = hash_frames(frames_of({"points": points, "img": images}))
    assert len(set(base)) == 2
    assert (hash_frames(frames_of({"points": [p.clone() for p in points], "img": images.clone()})) == base).all()
    changed = images.clone()
    changed[1, 5, 0, 0, 0] += 1  # one pixel of the last camera of frame 1
    again = hash_frames(frames_of({"points": points, "img": changed}))
    assert again[0] == base[0] and again[1] != base[1]
    assert hash_frames(frames_of(points))[0] != base[0]  # the images are part of the frame


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (torch.rand(10), r"cannot read frames"),
        (torch.rand(10, 2), r"must have shape \(N, 3\+\)"),
        ({"img_metas": [{}]}, r"has no points or images"),
        ({"points": [torch.rand(5, 4)], "img": torch.rand(2, 3, 8, 8)}, r"inputs\['img'\] has shape"),
        ({"foo": 1}, r"cannot find the frames"),
    ],
)
def test_unreadable_inputs_say_what_is_expected(inputs, message: str) -> None:
    with pytest.raises(TraceValidationError, match=message):
        frames_of(inputs)
