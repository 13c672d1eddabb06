"""``mldebugger import nuscenes``: nuScenes-format ground truth and predictions as a committed epoch."""

from __future__ import annotations

import argparse

from ml_debugger.cli._common import import_formats, settings, with_home


def cmd_import_nuscenes(args: argparse.Namespace) -> int:
    from ml_debugger.importers.nuscenes import import_nuscenes
    from ml_debugger.store import open_store

    summary = import_nuscenes(
        args.ground_truth, args.predictions, model_name=args.model, version_name=args.version,
        dataset_type=args.dataset_type, n_epoch=args.epoch, store=open_store(settings(args)),
    )
    print(
        f"Recorded {summary.inputs} samples ({summary.objects} objects, {summary.detections} detections) as "
        f"{args.model}/{args.version} {args.dataset_type} epoch {summary.epoch}; evaluate with "
        f"`mldebugger evaluate {args.model} {args.version}`."
    )
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    sub = with_home(import_formats(commands).add_parser(
        "nuscenes", help="nuScenes-format ground truth and predictions (results_nusc.json)"
    ))
    sub.add_argument("ground_truth", help="GT boxes per sample, with num_pts and ego_translation")
    sub.add_argument("predictions", help="the detection submission: {'meta', 'results': {sample_token: [box, ...]}}")
    sub.add_argument("--model", required=True, help="model_name to record under")
    sub.add_argument("--version", required=True, help="version_name to record under")
    sub.add_argument("--dataset-type", default="val", help="the split's name (default val)")
    sub.add_argument("--epoch", type=int, default=0, help="the epoch to record as (default 0)")
    sub.set_defaults(run=cmd_import_nuscenes)
