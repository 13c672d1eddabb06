"""Hugging Face RT-DETR, RT-DETRv2, D-FINE and YOLOS (tiny random configs, nothing downloaded): the
tracer and the Trainer callback record exactly what each model's own image processor's
``post_process_object_detection`` gives, with the decoder's query states as features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

transformers = pytest.importorskip("transformers")

from transformers import (
    DFineConfig,
    DFineForObjectDetection,
    HGNetV2Config,
    RTDetrConfig,
    RTDetrForObjectDetection,
    RTDetrImageProcessor,
    RTDetrResNetConfig,
    RTDetrV2Config,
    RTDetrV2ForObjectDetection,
    YolosConfig,
    YolosForObjectDetection,
    YolosImageProcessor,
)

from ml_debugger.integrations.transformers import MLDebuggerCallback
from ml_debugger.store import LocalStore
from ml_debugger.training import ObjectDetectionTracer
from ml_debugger.training.detection import detector_class
from tests.integrations.test_detection_callbacks import hf_eval_set
from tests.integrations.tiny_detectors import SIDE
from tests.training.detection.conftest import GT_LIST, boxes_of, check_rows, read_rows

QUERIES, WIDTH = 10, 16
RESNET = {"embedding_size": 8, "hidden_sizes": [8, 16, 16, 16], "depths": [1, 1, 1, 1], "layer_type": "basic",
          "out_indices": [2, 3, 4]}
HGNET = {"embedding_size": 8, "stem_channels": [3, 8, 8], "stage_in_channels": [8, 16, 16, 16],
         "stage_mid_channels": [8, 8, 8, 8], "stage_out_channels": [16, 16, 16, 16], "stage_num_blocks": [1, 1, 1, 1],
         "stage_numb_of_layers": [1, 1, 1, 1], "stage_downsample": [False, True, True, True],
         "stage_light_block": [False, False, True, True], "stage_kernel_size": [3, 3, 5, 5],
         "hidden_sizes": [16, 16, 16, 16], "depths": [1, 1, 1, 1], "out_features": ["stage2", "stage3", "stage4"]}
RT_DETR = {"use_pretrained_backbone": False, "use_timm_backbone": False, "encoder_hidden_dim": WIDTH,
           "encoder_in_channels": [16, 16, 16], "encoder_ffn_dim": WIDTH, "encoder_attention_heads": 2, "d_model": WIDTH,
           "num_queries": QUERIES, "decoder_in_channels": [WIDTH] * 3, "decoder_ffn_dim": WIDTH, "decoder_layers": 2,
           "decoder_attention_heads": 2, "decoder_n_points": 2, "num_denoising": 0}
YOLOS = {"hidden_size": WIDTH, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": WIDTH,
         "image_size": [64, 64], "patch_size": 16, "num_detection_tokens": QUERIES}
# tracer class -> (model class, config, image processor, image feature width)
MODELS = {
    "RTDETRTracer": (RTDetrForObjectDetection, lambda: RTDetrConfig(backbone_config=RTDetrResNetConfig(**RESNET),
                                                                    **RT_DETR), RTDetrImageProcessor, 3 * WIDTH),
    "RTDETRv2Tracer": (RTDetrV2ForObjectDetection, lambda: RTDetrV2Config(
        backbone_config=RTDetrResNetConfig(**RESNET), **RT_DETR), RTDetrImageProcessor, 3 * WIDTH),
    "DFINETracer": (DFineForObjectDetection, lambda: DFineConfig(
        backbone_config=HGNetV2Config(**HGNET), **{**RT_DETR, "decoder_n_points": [2, 2, 2]}),
        RTDetrImageProcessor, 3 * WIDTH),
    "YOLOSTracer": (YolosForObjectDetection, lambda: YolosConfig(**YOLOS), YolosImageProcessor, WIDTH),
}


def hf_model(name: str) -> nn.Module:
    model_class, config_of, _, _ = MODELS[name]
    torch.manual_seed(0)
    config = config_of()
    config.id2label = {0: "cat", 1: "dog", 2: "bird", 3: "fish"}
    return model_class(config).eval()


def check_processed(rows, processed: list[dict], sizes: list[tuple[int, int]]) -> None:
    """Each row's detections are the post-processor's, highest score first, boxes clipped to the image."""
    assert sum(len(p["scores"]) for p in processed) > 0
    for i, (result, (width, height)) in enumerate(zip(processed, sizes)):
        order = torch.argsort(result["scores"], descending=True, stable=True).numpy()
        np.testing.assert_allclose(rows["pred_scores"][i], result["scores"].numpy()[order], rtol=1e-5)
        assert list(rows["pred_labels"][i]) == result["labels"].numpy()[order].tolist()
        clipped = np.clip(result["boxes"].numpy()[order], 0, [width, height, width, height])
        np.testing.assert_allclose(boxes_of(rows["pred_boxes"][i]), clipped.reshape(-1, 4), rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("name", list(MODELS))
def test_tracer_equals_the_image_processor(store: LocalStore, name: str) -> None:
    model = hf_model(name)
    assert detector_class(model).__name__ == name
    tracer = ObjectDetectionTracer(model, "m", "v1", store=store)
    assert type(tracer).__name__ == name
    assert (tracer.score_thresh, tracer.iou_thresh, tracer.max_detections_per_image) == (0.05, None, QUERIES)
    assert tracer.label_names == ("cat", "dog", "bird", "fish") and tracer.num_classes == 4

    pixels = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    if name == "YOLOSTracer":  # YOLOS takes no pixel_mask: sizes are the tensor's
        inputs, sizes = pixels, [(96, 64), (96, 64)]
        out = tracer(inputs, GT_LIST, input_ids=[0, 1], dataset_type="val")
        with torch.no_grad():
            expected = model(pixels)
    else:
        mask = torch.ones(2, 64, 96, dtype=torch.long)
        mask[1, 48:, :], mask[1, :, 60:] = 0, 0  # the second image is 60 x 48, padded
        inputs, sizes = {"pixel_values": pixels, "pixel_mask": mask}, [(96, 64), (60, 48)]
        out = tracer(inputs, GT_LIST, input_ids=[0, 1], dataset_type="val")
        with torch.no_grad():
            expected = model(**inputs)
    torch.testing.assert_close(out.logits, expected.logits)

    processor = MODELS[name][2]()
    processed = processor.post_process_object_detection(
        expected, threshold=0.05, target_sizes=[(h, w) for w, h in sizes]
    )
    tracer.wait_for_save()
    rows = read_rows(store)
    check_rows(rows, sizes, (0.05, None, QUERIES))
    check_processed(rows, processed, sizes)
    assert {len(f) for cell in rows["pred_features"] for f in cell} == {WIDTH}  # decoder query states
    assert len(rows["image_features"][0]) == MODELS[name][3] and "gt_features" not in rows


def collate(batch: list[dict], mask: bool) -> dict:
    pixels = torch.stack([b["pixel_values"] for b in batch])
    inputs = {"pixel_values": pixels, "labels": [b["labels"] for b in batch]}
    if mask:
        inputs["pixel_mask"] = torch.ones(len(batch), *pixels.shape[-2:], dtype=torch.long)
    return inputs


@pytest.mark.parametrize("name", list(MODELS))
def test_trainer_evaluate_records_the_image_processors_detections(tmp_path: Path, store: LocalStore, name: str) -> None:
    model, data, mask = hf_model(name), hf_eval_set(4), name != "YOLOSTracer"
    callback = MLDebuggerCallback("hf", "v1", store=store, score_thresh=0.2)
    args = transformers.TrainingArguments(output_dir=str(tmp_path), per_device_eval_batch_size=2, report_to=[],
                                          use_cpu=True, remove_unused_columns=False, disable_tqdm=True)
    trainer = transformers.Trainer(model=model, args=args, eval_dataset=data, callbacks=[callback],
                                   data_collator=lambda batch: collate(batch, mask))
    trainer.evaluate()
    assert store.model_task("hf") == "detection2d"  # found from the model

    rows = read_rows(store, "hf")
    assert rows["input_id"].tolist() == ["0", "1", "2", "3"] and rows["score_thresh"].tolist() == pytest.approx([0.2] * 4)
    assert rows["max_detections"].tolist() == [QUERIES] * 4
    model.eval()
    batch = collate(data, mask)
    del batch["labels"]
    with torch.no_grad():
        expected = model(**batch)
    processed = MODELS[name][2]().post_process_object_detection(
        expected, threshold=0.2, target_sizes=[(SIDE, SIDE)] * 4  # the original size, from the labels' orig_size
    )
    check_processed(rows, processed, [(SIDE, SIDE)] * 4)
    assert {len(f) for cell in rows["pred_features"] for f in cell} == {WIDTH}


@pytest.mark.parametrize("name", ["RTDETRTracer", "YOLOSTracer"])
def test_fewer_detections_are_the_processors_best(store: LocalStore, name: str) -> None:
    model = hf_model(name)
    subclass = type("Finetuned", (type(model),), {})  # a user's subclass is recognised by its base
    assert detector_class(subclass(model.config)).__name__ == name
    with pytest.warns(UserWarning, match="does not use NMS; iou_thresh=0.5 is ignored"):
        tracer = ObjectDetectionTracer(model, "m", "v1", iou_thresh=0.5, max_detections_per_image=3, store=store)
    assert (tracer.iou_thresh, tracer.max_detections_per_image) == (None, 3)
    pixels = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        output = model(pixel_values=pixels)
    got = tracer.batch_from_output(output, pixels, GT_LIST[:1]).predictions[0]  # not recorded: no second pass
    want = MODELS[name][2]().post_process_object_detection(output, threshold=0.05, target_sizes=[(64, 64)])[0]
    best = torch.argsort(want["scores"], descending=True, stable=True)[:3].numpy()
    assert len(best) == 3
    np.testing.assert_allclose(got.scores, want["scores"].numpy()[best], rtol=1e-5)
    assert got.labels.tolist() == want["labels"].numpy()[best].tolist()
    np.testing.assert_allclose(got.boxes, want["boxes"].numpy()[best].clip(0, 64), rtol=1e-5, atol=1e-3)
