"""References to stored results: ``RESULT``, ``VERSION/RESULT`` or ``MODEL/VERSION/RESULT``.

Names cannot contain ``/``, so a reference is unambiguous; missing parts come from the context
(the evaluator's, or the CLI's ``--model``/``--version``). ``@latest`` in place of a result name
is the version's newest stored result.
"""

from __future__ import annotations

from dataclasses import dataclass

from ml_debugger.evaluator.result import Result
from ml_debugger.exceptions import ConfigurationError, NoDataError
from ml_debugger.names import validate_name
from ml_debugger.store.base import TraceStore

LATEST = "@latest"


@dataclass(frozen=True)
class ResultRef:
    """A stored result's model, version and name (or ``@latest``)."""

    model: str
    version: str
    result: str

    def __str__(self) -> str:
        return f"{self.model}/{self.version}/{self.result}"

    @classmethod
    def parse(cls, text: str, model: str, version: str | None) -> ResultRef:
        """``text`` completed by ``model`` and ``version``; ConfigurationError when it cannot be."""
        parts = str(text).split("/")
        if len(parts) == 1 and version is None:
            raise ConfigurationError(f"result reference {text!r} needs a version: write VERSION/RESULT")
        if len(parts) > 3:
            raise ConfigurationError(
                f"bad result reference {text!r}; expected RESULT, VERSION/RESULT or MODEL/VERSION/RESULT"
            )
        full = [model, version][: 3 - len(parts)] + parts
        name = full[2] if full[2] == LATEST else validate_name(full[2], "result_name")
        return cls(validate_name(full[0], "model_name"), validate_name(full[1], "version_name"), name)

    def resolve(self, store: TraceStore) -> ResultRef:
        """This reference with ``@latest`` replaced by the name of the version's newest result."""
        if self.result != LATEST:
            return self
        listed = store.list_results(self.model, self.version)
        if listed.empty:
            raise NoDataError(f"{self.model}/{self.version} has no stored result; evaluate it first")
        newest = listed.sort_values("created_at", kind="stable")["result_name"].iloc[-1]
        return ResultRef(self.model, self.version, str(newest))

    def load(self, store: TraceStore) -> Result:
        ref = self.resolve(store)
        stored = store.load_result(ref.model, ref.version, ref.result)
        return Result(stored.meta, stored.tables)


def load_result(store: TraceStore, reference: str, model: str, version: str | None) -> Result:
    """The stored result that ``reference`` names, relative to ``model`` and ``version``."""
    return ResultRef.parse(reference, model, version).load(store)
