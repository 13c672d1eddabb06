"""The error-code plug-in interface and its registry.

An error code is a class with fixed metadata (a stable ``id``, a ``name``, a ``description``, the
category it usually falls in and a ``recommended_action``) and one rule, ``find``, that returns a
boolean mask over the per-unit table. Adding a code means writing such a class and decorating it
with `register`; nothing else changes.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import pandas as pd

from ml_debugger.evaluator.analysis.categories import CATEGORIES
from ml_debugger.evaluator.analysis.config import AnalysisConfig

_ID_PATTERN = re.compile(r"^[A-Z][A-Z0-9]{1,3}[0-9]{3}$")
_METADATA = ("id", "name", "description", "category", "recommended_action", "task")


class ErrorCode(ABC):
    """One error code: metadata plus the rule that finds the units it applies to.

    Attributes:
        id: stable identifier, a 2-4 character prefix (a capital, then capitals or digits) and 3
            digits (``"CLS001"``, ``"D3D001"``); never reused.
        name: short snake_case name.
        description: what the code means, in one or two sentences.
        category: the issue category the flagged units usually fall in (one of ``CATEGORIES``).
        recommended_action: what an ML engineer should do next about the flagged units.
        task: the task whose units the rule reads (``"classification"``).
    """

    id: ClassVar[str]
    name: ClassVar[str]
    description: ClassVar[str]
    category: ClassVar[str]
    recommended_action: ClassVar[str]
    task: ClassVar[str] = "classification"

    @abstractmethod
    def find(self, table: pd.DataFrame, config: AnalysisConfig) -> np.ndarray:
        """Boolean mask, one entry per row of ``table``: the units this code applies to."""

    def affected_classes(
        self, table: pd.DataFrame, mask: np.ndarray, config: AnalysisConfig
    ) -> list[int]:
        """The labels of the flagged units, most frequent first (ties: lower class first)."""
        labels = table["label"].to_numpy(dtype=np.int64)[mask]
        return _most_frequent(labels, config.max_affected_classes)

    def detect(self, table: pd.DataFrame, config: AnalysisConfig) -> np.ndarray:
        """`find`, checked to be a boolean mask of the table's length."""
        mask = np.asarray(self.find(table, config))
        if mask.dtype != np.bool_ or mask.shape != (len(table),):
            raise TypeError(
                f"{type(self).__name__}.find must return a bool array of shape ({len(table)},); "
                f"got dtype {mask.dtype} and shape {mask.shape}"
            )
        return mask


def _most_frequent(values: np.ndarray, limit: int) -> list[int]:
    uniques, counts = np.unique(values, return_counts=True)
    order = np.lexsort((uniques, -counts))
    return [int(v) for v in uniques[order][:limit]]


_REGISTRY: dict[str, ErrorCode] = {}


def register(cls: type[ErrorCode]) -> type[ErrorCode]:
    """Class decorator: validate a code's metadata and add it to the registry."""
    missing = [attr for attr in _METADATA if not isinstance(getattr(cls, attr, None), str)]
    if missing:
        raise TypeError(f"error code {cls.__name__} must define string attributes {missing}")
    if not _ID_PATTERN.match(cls.id):
        raise ValueError(f"error code id {cls.id!r} must look like 'CLS001' or 'D3D001' (a 2-4 character prefix of capitals and digits starting with a capital, then 3 digits)")
    if cls.category not in CATEGORIES:
        raise ValueError(
            f"error code {cls.id} has category {cls.category!r}; expected one of: {', '.join(CATEGORIES)}"
        )
    if cls.id in _REGISTRY and type(_REGISTRY[cls.id]) is not cls:
        owner = type(_REGISTRY[cls.id]).__name__
        raise ValueError(f"error code id {cls.id!r} is already registered by {owner}")
    _REGISTRY[cls.id] = cls()
    return cls


def registered_codes(task: str = "classification") -> tuple[ErrorCode, ...]:
    """The registered codes of a task, sorted by id."""
    return tuple(code for _, code in sorted(_REGISTRY.items()) if code.task == task)
