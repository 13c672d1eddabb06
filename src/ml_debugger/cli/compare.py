"""``mldebugger compare BASELINE CANDIDATE --model M [--version V]``: two results unit by unit.

A result is named ``RESULT`` (of ``--version``), ``VERSION/RESULT`` (of ``--model``) or
``MODEL/VERSION/RESULT``; ``@latest`` in place of RESULT is the version's newest result.
"""

from __future__ import annotations

import argparse
import json

from ml_debugger.cli._common import settings, with_home
from ml_debugger.config import ENV_API_ENDPOINT

REFERENCE_HELP = "RESULT (of --version), VERSION/RESULT or MODEL/VERSION/RESULT; @latest as RESULT = the newest"


def add_comparison_options(sub: argparse.ArgumentParser) -> None:
    """The options that choose what is compared, shared with ``mldebugger check``."""
    sub.add_argument("--model", required=True, help="the model the references are relative to")
    sub.add_argument("--baseline-epoch", default="latest",
                     help="'latest' (default: each dataset's latest evaluated epoch) or an epoch number")
    sub.add_argument("--candidate-epoch", default="latest", help="likewise for the candidate")
    sub.add_argument("--dataset", action="append", dest="datasets", metavar="NAME",
                     help="compare only this dataset (repeatable; default: every dataset)")
    sub.add_argument("--hotspot-min-jaccard", type=float, default=None,
                     help="least Jaccard index of members for two hotspot clusters to be the same (default 0.1)")
    sub.add_argument("--limit", type=int, default=20, help="units listed per list (default 20)")


def comparison_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of ``compare_results`` from the shared options."""
    from ml_debugger.evaluator.compare.units import parse_epoch

    options = {"baseline_epoch": parse_epoch(args.baseline_epoch), "candidate_epoch": parse_epoch(args.candidate_epoch),
               "datasets": args.datasets}
    if args.hotspot_min_jaccard is not None:
        options["hotspot_min_jaccard"] = args.hotspot_min_jaccard
    return options


def cmd_compare(args: argparse.Namespace) -> int:
    from ml_debugger.evaluator.compare import compare_results
    from ml_debugger.evaluator.compare.refs import load_result
    from ml_debugger.store import open_store

    store = open_store(settings(args))
    baseline, candidate = (load_result(store, ref, args.model, args.version) for ref in (args.baseline, args.candidate))
    comparison = compare_results(baseline, candidate, **comparison_options(args))
    if args.format == "json":
        print(json.dumps(comparison.to_dict(limit=args.limit), indent=2))
    else:
        print(comparison.to_text(limit=args.limit))
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    sub = with_home(commands.add_parser(
        "compare", help=f"compare two results unit by unit: fixed, newly broken, metrics, codes, hotspots "
                        f"(on ${ENV_API_ENDPOINT} when set)",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
    ))
    sub.add_argument("baseline", help=REFERENCE_HELP)
    sub.add_argument("candidate", help=REFERENCE_HELP)
    sub.add_argument("--version", help="the version a bare RESULT belongs to")
    add_comparison_options(sub)
    sub.add_argument("--format", choices=["text", "json"], default="text", help="text (default) or JSON")
    sub.set_defaults(run=cmd_compare)
