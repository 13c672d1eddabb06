"""Tasks as plug-ins: each task (classification, detection2d, ...) is one subpackage of this one.

A task subpackage defines ``TASK``, a :class:`Task`: its name, the schema of its trace rows (the
one definition that the tracers write and the server checks uploads against) and the module of
its evaluation, imported only when a version of that task is evaluated. Adding a task is adding
a subpackage; the core, the store, the server and the evaluator look tasks up by name here and
never branch on them.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

from ml_debugger.exceptions import ConfigurationError
from ml_debugger.tasks._schema import Column, TraceSchema

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["Column", "EvaluationOutput", "Task", "TaskEvaluation", "TraceSchema", "get_task", "task_names"]


@dataclass(frozen=True)
class EvaluationOutput:
    """What a task's evaluation returns.

    Attributes:
        tables: the result's tables by name. Every task gives ``metrics`` and ``categories`` (one
            row per dataset and epoch, ``dataset, epoch`` first), ``issues``, ``hotspots``,
            ``samples`` (one row per unit, with ``dataset, epoch, input_id, category,
            error_codes``) and ``codes``; heatmaps are tables named ``heatmap_<name>``.
        meta: task-specific facts for the result's metadata (rows read, duplicates removed, ...).
    """

    tables: dict[str, pd.DataFrame]
    meta: dict[str, Any] = field(default_factory=dict)


class TaskEvaluation(Protocol):
    """The evaluation of one task, as the evaluator calls it."""

    def make_config(self, thresholds: Mapping[str, Any]) -> Any:
        """The task's validated analysis settings from ``request_evaluation``'s keyword arguments
        (an object with ``to_dict()``); ConfigurationError naming an unknown or bad setting."""

    def evaluate(self, table: pa.Table, config: Any, *, progress: bool = False) -> EvaluationOutput:
        """Analyse committed trace rows of one version (any epochs and datasets)."""


@dataclass(frozen=True)
class Task:
    """A task plug-in.

    Attributes:
        name: the name versions are registered with (``"classification"``).
        description: one line for listings and error messages.
        schema: the columns of its trace rows beside the common ones.
        evaluation_module: the module whose ``EVALUATION`` implements :class:`TaskEvaluation`.
    """

    name: str
    description: str
    schema: TraceSchema
    evaluation_module: str

    def evaluation(self) -> TaskEvaluation:
        """The task's evaluation (imports the analysis on first use)."""
        return importlib.import_module(self.evaluation_module).EVALUATION


@cache
def _registry() -> dict[str, Task]:
    tasks: dict[str, Task] = {}
    for module in pkgutil.iter_modules(__path__):
        if not module.ispkg or module.name.startswith("_"):
            continue
        task = importlib.import_module(f"{__name__}.{module.name}").TASK
        tasks[task.name] = task
    return tasks


def task_names() -> list[str]:
    """The names of every available task, sorted."""
    return sorted(_registry())


def get_task(name: object) -> Task:
    """The task registered as ``name``; ConfigurationError listing the valid names otherwise."""
    tasks = _registry()
    if not isinstance(name, str) or name not in tasks:
        raise ConfigurationError(f"unknown task {name!r}; expected one of: {', '.join(sorted(tasks))}")
    return tasks[name]
