# PointPillars from MMDetection3D's own shipped KITTI config, traced by ml-debugger.
# The two ml-debugger lines are custom_imports and custom_hooks; the rest makes the model and the
# data tiny enough to train on a CPU in seconds (a 20 m x 20 m range, narrow layers, Car only).
# Data: a KITTI layout (kitti_infos_{train,val}.pkl, training/velodyne_reduced/*.bin) under
# $MLD_KITTI_ROOT (default data/kitti/), as MMDetection3D's create_data.py writes it.
_base_ = ["mmdet3d::pointpillars/pointpillars_hv_secfpn_8xb6-160e_kitti-3d-car.py"]

custom_imports = dict(imports=["ml_debugger.integrations.mmengine"], allow_failed_imports=False)
custom_hooks = [dict(type="MLDebuggerHook", model_name="pointpillars", version_name="v1")]

data_root = "{{$MLD_KITTI_ROOT:data/kitti/}}"
point_cloud_range = [0, -10.24, -3, 20.48, 10.24, 1]
class_names = ["Car"]
metainfo = dict(classes=class_names)

model = dict(
    data_preprocessor=dict(voxel_layer=dict(point_cloud_range=point_cloud_range, max_voxels=(4000, 4000))),
    voxel_encoder=dict(feat_channels=[16], point_cloud_range=point_cloud_range),
    middle_encoder=dict(in_channels=16, output_shape=[128, 128]),
    backbone=dict(in_channels=16, layer_nums=[1, 1, 1], out_channels=[16, 32, 64]),
    neck=dict(in_channels=[16, 32, 64], out_channels=[32, 32, 32]),
    bbox_head=dict(
        in_channels=96,
        feat_channels=96,
        anchor_generator=dict(ranges=[[0, -10.24, -1.78, 20.48, 10.24, -1.78]]),
    ),
)

train_pipeline = [
    dict(type="LoadPointsFromFile", coord_type="LIDAR", load_dim=4, use_dim=4),
    dict(type="LoadAnnotations3D", with_bbox_3d=True, with_label_3d=True),
    dict(type="RandomFlip3D", flip_ratio_bev_horizontal=0.5),
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="ObjectRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="PointShuffle"),
    dict(type="Pack3DDetInputs", keys=["points", "gt_labels_3d", "gt_bboxes_3d"]),
]
test_pipeline = [
    dict(type="LoadPointsFromFile", coord_type="LIDAR", load_dim=4, use_dim=4),
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="Pack3DDetInputs", keys=["points"]),
]

train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(times=1, dataset=dict(data_root=data_root, pipeline=train_pipeline, metainfo=metainfo)),
)
val_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline, metainfo=metainfo),
)
test_dataloader = val_dataloader
# KITTI's AP (kitti_eval) runs numba CUDA kernels; on a CPU the metric only writes the result files.
val_evaluator = dict(
    ann_file=data_root + "kitti_infos_val.pkl", format_only=True, submission_prefix=data_root + "results"
)
test_evaluator = val_evaluator

train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=-1))
