"""``mldebugger import coco``: a COCO instances file and a results file as a committed epoch."""

from __future__ import annotations

import argparse

from ml_debugger.cli._common import import_formats, settings, with_home


def cmd_import_coco(args: argparse.Namespace) -> int:
    from ml_debugger.importers.coco import import_coco
    from ml_debugger.store import open_store

    summary = import_coco(
        args.instances, args.results, model_name=args.model, version_name=args.version,
        dataset_type=args.dataset_type, n_epoch=args.epoch, store=open_store(settings(args)),
    )
    print(
        f"Recorded {summary.inputs} images ({summary.objects} objects, {summary.detections} detections) as "
        f"{args.model}/{args.version} {args.dataset_type} epoch {summary.epoch}; evaluate with "
        f"`mldebugger evaluate {args.model} {args.version}`."
    )
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    coco = with_home(import_formats(commands).add_parser(
        "coco", help="a COCO instances (ground truth) file and a COCO results (detections) file"
    ))
    coco.add_argument("instances", help="COCO instances JSON: images, annotations, categories")
    coco.add_argument("results", help="COCO results JSON: a list of {image_id, category_id, bbox, score}")
    coco.add_argument("--model", required=True, help="model_name to record under")
    coco.add_argument("--version", required=True, help="version_name to record under")
    coco.add_argument("--dataset-type", default="val", help="the split's name (default val)")
    coco.add_argument("--epoch", type=int, default=0, help="the epoch to record as (default 0)")
    coco.set_defaults(run=cmd_import_coco)
