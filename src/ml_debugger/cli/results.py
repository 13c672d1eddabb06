"""``mldebugger results`` and ``mldebugger evaluate``: list and make the results of a model version."""

from __future__ import annotations

import argparse

from ml_debugger.cli._common import evaluator, with_home
from ml_debugger.config import ENV_API_ENDPOINT
from ml_debugger.exceptions import ConfigurationError


def cmd_results(args: argparse.Namespace) -> int:
    import pandas as pd

    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.max_colwidth", 40):
        print(evaluator(args).list_results().to_string(index=False))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    epoch: str | int | None = {"latest": "latest", "all": None}.get(args.epoch, args.epoch)
    if isinstance(epoch, str) and epoch != "latest":
        if not epoch.isdigit():
            raise ConfigurationError(f"--epoch must be 'latest', 'all' or an epoch number; got {epoch!r}")
        epoch = int(epoch)
    result = evaluator(args).request_evaluation(result_name=args.name, n_epoch=epoch)
    result.get_summary()
    print(f"\nStored as result {result.name!r}.")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    for name, run, text in (("results", cmd_results, "list the stored results of a model version"),
                            ("evaluate", cmd_evaluate, "evaluate a model version and print the summary")):
        sub = with_home(commands.add_parser(name, help=text + f" (on ${ENV_API_ENDPOINT} when set)"))
        sub.add_argument("model_name")
        sub.add_argument("version_name")
        sub.set_defaults(run=run)
        if name == "evaluate":
            sub.add_argument("--epoch", default="latest", help="'latest' (default), 'all', or an epoch number")
            sub.add_argument("--name", help="the result's name (generated when absent)")
