"""``mldebugger check``: a CI quality gate of a candidate result against a baseline result.

Exit status: 0 every rule passes, 1 a rule fails, 2 a usage or configuration error (bad flags,
rules naming unknown metrics, a missing result...). Rules come from ``[tool.mldebugger.check]``
of ``--config`` (default ``./pyproject.toml`` when it exists) with the flags on top.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ml_debugger.cli._common import settings, with_home
from ml_debugger.cli.compare import REFERENCE_HELP, add_comparison_options, comparison_options
from ml_debugger.exceptions import ConfigurationError, MLDebuggerError

PASSED, FAILED, USAGE = 0, 1, 2
DEFAULT_CONFIG = Path("pyproject.toml")


def _rules(args: argparse.Namespace):
    """The merged rules and the baseline reference (flag, else the TOML's ``baseline``)."""
    from ml_debugger.evaluator.compare.rules import Rules, parse_assignments, read_check_table

    config = args.config or (DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None)
    table = read_check_table(config) if config else {}
    from_file = table.pop("baseline", None)
    baseline = args.baseline or from_file
    if not isinstance(baseline, str):
        raise ConfigurationError("no baseline: give --baseline RESULT or baseline = \"...\" in [tool.mldebugger.check]"
                                 if baseline is None else f"baseline in {config} must be a string; got {baseline!r}")
    flags = {
        "max_metric_drop": parse_assignments(args.max_metric_drop, "--max-metric-drop"),
        "max_metric_rise": parse_assignments(args.max_metric_rise, "--max-metric-rise"),
        "max_category_rise": parse_assignments(args.max_category_rise, "--max-category-rise"),
        "max_code_rise": parse_assignments(args.max_code_rise, "--max-code-rise", integer=True),
        "max_newly_broken": args.max_newly_broken, "max_newly_broken_share": args.max_newly_broken_share,
        "datasets": args.datasets,
    }
    from_flags = Rules.from_mapping({k: v for k, v in flags.items() if v is not None}, "flags")
    return Rules.from_mapping(table, str(config)).merged(from_flags), baseline


def _gate(args: argparse.Namespace):
    from ml_debugger.evaluator import Evaluator
    from ml_debugger.evaluator.compare import compare_results
    from ml_debugger.evaluator.compare.gate import check
    from ml_debugger.evaluator.compare.refs import LATEST, load_result
    from ml_debugger.store import open_store

    rules, baseline_ref = _rules(args)
    store = open_store(settings(args))
    baseline = load_result(store, baseline_ref, args.model, args.version)
    if args.evaluate:
        candidate = Evaluator(args.model, args.version, store=store).request_evaluation(result_name=args.name,
                                                                                        progress=False)
        print(f"evaluated {args.model}/{args.version} as result {candidate.name!r}", file=sys.stderr)
    else:
        candidate = load_result(store, args.candidate or LATEST, args.model, args.version)
    options = comparison_options(args)
    options.pop("datasets")  # the rules' datasets select what is checked; every dataset is compared
    return check(compare_results(baseline, candidate, **options), rules)


def cmd_check(args: argparse.Namespace) -> int:
    from ml_debugger.evaluator.compare.gate_report import gate_junit, gate_text

    try:
        gate = _gate(args)
        if args.junit_xml:
            Path(args.junit_xml).write_text(gate_junit(gate, args.limit), encoding="utf-8")
    except (MLDebuggerError, OSError) as exc:
        print(f"mldebugger check: error: {exc}", file=sys.stderr)
        return USAGE
    if args.format == "json":
        print(json.dumps(gate.to_dict(limit=args.limit), indent=2))
    elif args.format == "junit":
        print(gate_junit(gate, args.limit), end="")
    else:
        print(gate_text(gate, args.limit))
    return PASSED if gate.passed else FAILED


def register(commands: argparse._SubParsersAction) -> None:
    sub = with_home(commands.add_parser(
        "check", help="quality gate for CI: exit 1 when the candidate breaks a rule against a baseline result",
        description=" ".join(__doc__.split("\n\n")[1].split()),
    ))
    sub.add_argument("--version", required=True, help="the candidate's version")
    sub.add_argument("--baseline", help=f"the baseline: {REFERENCE_HELP} (or baseline in the TOML)")
    candidate = sub.add_mutually_exclusive_group()
    candidate.add_argument("--candidate", help="the candidate result (default: the newest result of --version)")
    candidate.add_argument("--evaluate", action="store_true",
                           help="evaluate --version's latest epoch first and check that result")
    sub.add_argument("--name", help="with --evaluate: the new result's name (generated when absent)")
    add_comparison_options(sub)
    sub.add_argument("--config", type=Path, help="a TOML file with [tool.mldebugger.check] (default ./pyproject.toml)")
    rules = sub.add_argument_group("rules (each may be repeated; they override the TOML's)")
    rules.add_argument("--max-metric-drop", action="append", default=[], metavar="METRIC=TOL",
                       help="fail when baseline - candidate > TOL (metrics where higher is better)")
    rules.add_argument("--max-metric-rise", action="append", default=[], metavar="METRIC=TOL",
                       help="fail when candidate - baseline > TOL (metrics where lower is better)")
    rules.add_argument("--max-newly-broken", type=int, metavar="N", help="fail when more than N units newly break")
    rules.add_argument("--max-newly-broken-share", type=float, metavar="S",
                       help="fail when newly broken / matched units > S")
    rules.add_argument("--max-category-rise", action="append", default=[], metavar="CATEGORY=TOL",
                       help="fail when the category's share of units rises by more than TOL")
    rules.add_argument("--max-code-rise", action="append", default=[], metavar="CODE=N",
                       help="fail when more than N additional units carry the error code")
    sub.add_argument("--format", choices=["text", "json", "junit"], default="text", help="what to print")
    sub.add_argument("--junit-xml", metavar="PATH", help="also write a JUnit XML report to PATH")
    sub.set_defaults(run=cmd_check)
