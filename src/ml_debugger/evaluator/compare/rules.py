"""The rules of the quality gate, from a mapping (a TOML table) or from command-line flags.

Every limit is absolute, in the unit of what it limits, and applies to each dataset compared (or
to ``datasets``):

| rule | fails when |
|---|---|
| ``max_metric_drop = {metric = tol}`` | baseline - candidate > tol (for metrics where higher is better) |
| ``max_metric_rise = {metric = tol}`` | candidate - baseline > tol (for metrics where lower is better) |
| ``max_newly_broken = n`` | more than n units are newly broken |
| ``max_newly_broken_share = s`` | newly broken / matched units > s |
| ``max_category_rise = {category = tol}`` | the category's share of units grows by more than tol |
| ``max_code_rise = {code = n}`` | more than n additional units carry the error code |

A value that cannot be computed (NaN) fails its rule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import tomllib

from ml_debugger.exceptions import ConfigurationError

TOML_TABLE = ("tool", "mldebugger", "check")
MAPPING_RULES = ("max_metric_drop", "max_metric_rise", "max_category_rise", "max_code_rise")
SCALAR_RULES = ("max_newly_broken", "max_newly_broken_share")


@dataclass(frozen=True)
class Rules:
    """What the candidate must satisfy against the baseline (see the module's docstring)."""

    max_metric_drop: dict[str, float] = field(default_factory=dict)
    max_metric_rise: dict[str, float] = field(default_factory=dict)
    max_newly_broken: int | None = None
    max_newly_broken_share: float | None = None
    max_category_rise: dict[str, float] = field(default_factory=dict)
    max_code_rise: dict[str, int] = field(default_factory=dict)
    datasets: tuple[str, ...] | None = None

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], source: str = "rules") -> Rules:
        """Rules from a mapping such as a TOML table; ConfigurationError naming a bad key or value."""
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(mapping) - set(valid))
        if unknown:
            raise ConfigurationError(f"{source}: unknown rule(s) {unknown}; expected some of {valid}")
        values: dict[str, Any] = {}
        for name, value in mapping.items():
            where = f"{source}: {name}"
            if name == "datasets":
                names = not isinstance(value, str) and isinstance(value, Sequence)
                if not names or not all(isinstance(v, str) for v in value):
                    raise ConfigurationError(f"{where} must be a list of dataset names; got {value!r}")
                values[name] = tuple(value)
            elif name in MAPPING_RULES:
                if not isinstance(value, Mapping):
                    raise ConfigurationError(f"{where} must be a table of name = limit; got {value!r}")
                integer = name == "max_code_rise"
                values[name] = {str(k): _limit(v, f"{where}.{k}", integer) for k, v in value.items()}
            else:
                values[name] = _limit(value, where, integer=name == "max_newly_broken")
        return cls(**values)

    def merged(self, other: Rules) -> Rules:
        """These rules with ``other``'s set values on top (a flag overrides the same TOML entry)."""
        changes: dict[str, Any] = {name: {**getattr(self, name), **getattr(other, name)} for name in MAPPING_RULES}
        for name in (*SCALAR_RULES, "datasets"):
            if getattr(other, name) is not None:
                changes[name] = getattr(other, name)
        return replace(self, **changes)

    def is_empty(self) -> bool:
        return not any(getattr(self, name) for name in MAPPING_RULES) and all(
            getattr(self, name) is None for name in SCALAR_RULES)

    def to_dict(self) -> dict[str, Any]:
        """The rules that are set, as plain data."""
        out = {name: dict(getattr(self, name)) for name in MAPPING_RULES if getattr(self, name)}
        out.update({name: getattr(self, name) for name in SCALAR_RULES if getattr(self, name) is not None})
        if self.datasets is not None:
            out["datasets"] = list(self.datasets)
        return out


def _limit(value: object, where: str, integer: bool) -> float | int:
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise ConfigurationError(f"{where} must be {kind} >= 0; got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ConfigurationError(f"{where} must be {kind} >= 0; got {value!r}")
    return int(value) if integer else float(value)


def read_check_table(path: str | Path) -> dict[str, Any]:
    """The ``[tool.mldebugger.check]`` table of a TOML file (empty when the file has none)."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise ConfigurationError(f"cannot read the rules file {str(path)!r}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path} is not valid TOML: {exc}") from exc
    table: Any = document
    for part in TOML_TABLE:
        table = table.get(part, {}) if isinstance(table, dict) else {}
    if not isinstance(table, dict):
        raise ConfigurationError(f"{path}: [{'.'.join(TOML_TABLE)}] must be a table")
    return dict(table)


def parse_assignments(items: Sequence[str], flag: str, integer: bool = False) -> dict[str, float | int]:
    """``["accuracy=0.01", ...]`` from a repeated flag as ``{"accuracy": 0.01}``."""
    out: dict[str, float | int] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            raise ConfigurationError(f"{flag} takes NAME=LIMIT (e.g. {flag} accuracy=0.01); got {item!r}")
        try:
            number: object = int(raw) if integer else float(raw)
        except ValueError:
            number = raw
        out[name.strip()] = _limit(number, f"{flag} {name.strip()}", integer)
    return out
