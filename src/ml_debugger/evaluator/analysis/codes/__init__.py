"""Error codes as plug-ins: the interface, the registry, the classification codes and reports.

Importing this package registers the classification codes ``CLS001`` ... ``CLS010``.
"""

from ml_debugger.evaluator.analysis.codes import classification as _classification  # noqa: F401
from ml_debugger.evaluator.analysis.codes._base import ErrorCode, register, registered_codes
from ml_debugger.evaluator.analysis.codes._report import (
    CATALOG_COLUMNS,
    ISSUE_COLUMNS,
    code_catalog,
    codes_per_unit,
    detect_codes,
    issues_table,
)

__all__ = [
    "CATALOG_COLUMNS",
    "ISSUE_COLUMNS",
    "ErrorCode",
    "code_catalog",
    "codes_per_unit",
    "detect_codes",
    "issues_table",
    "register",
    "registered_codes",
]
