# RetinaNet from MMDetection's own shipped COCO config, traced by ml-debugger.
# The two ml-debugger lines are custom_imports and custom_hooks; the rest makes the model and the
# data tiny enough to train on a CPU in seconds (ResNet-18 without pretrained weights, narrow FPN
# and head, one class, small images). Data: a COCO layout under $MLD_COCO_ROOT (default data/coco/).
_base_ = ["mmdet::retinanet/retinanet_r50_fpn_1x_coco.py"]

custom_imports = dict(imports=["ml_debugger.integrations.mmengine"], allow_failed_imports=False)
custom_hooks = [dict(type="MLDebuggerHook", model_name="retinanet", version_name="v1")]

data_root = "{{$MLD_COCO_ROOT:data/coco/}}"
metainfo = dict(classes=("box",))
image_scale = (120, 90)

model = dict(
    backbone=dict(depth=18, init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=32),
    bbox_head=dict(num_classes=1, in_channels=32, feat_channels=32, stacked_convs=1),
)

train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations", with_bbox=True),
    dict(type="Resize", scale=image_scale, keep_ratio=True),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PackDetInputs"),
]
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=image_scale, keep_ratio=True),
    dict(type="LoadAnnotations", with_bbox=True),
    dict(type="PackDetInputs", meta_keys=("img_id", "img_path", "ori_shape", "img_shape", "scale_factor")),
]
dataset = dict(data_root=data_root, data_prefix=dict(img="images/"), metainfo=metainfo)
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(**dataset, ann_file="annotations/instances_train.json", pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(**dataset, ann_file="annotations/instances_val.json", pipeline=test_pipeline),
)
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + "annotations/instances_val.json")
test_evaluator = val_evaluator

train_cfg = dict(max_epochs=2, val_interval=1)
param_scheduler = [dict(type="ConstantLR", factor=1.0)]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=-1, save_last=False))
