"""The gate's verdict as text for a CI log and as a JUnit XML report for CI systems."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ml_debugger.evaluator.compare.gate import GateResult
from ml_debugger.evaluator.compare.report import frame_text, unit_rows

SUITE = "mldebugger.check"


def _label(info: dict) -> str:
    return f"{info['model']}/{info['version']}/{info['result']}"


def _newly_broken(gate: GateResult, limit: int) -> str:
    broken = gate.comparison.newly_broken()
    shown = f"{min(limit, len(broken))} of {len(broken)}" if len(broken) > limit else str(len(broken))
    return (f"Newly broken units, most confident first ({shown}):\n"
            f"{frame_text(unit_rows(gate.comparison, broken.head(limit)))}")


def gate_text(gate: GateResult, limit: int = 20) -> str:
    """Verdict, one line per check (FAIL first), the comparison's notes and the newly broken units."""
    c = gate.comparison
    failed = len(gate.failed)
    verdict = "PASSED" if gate.passed else f"FAILED ({failed} of {len(gate.checks)} checks)"
    lines = [f"mldebugger check {verdict}: candidate {_label(c.candidate)} against baseline {_label(c.baseline)}"]
    lines += [f"   {note}" for note in c.notes]
    ordered = gate.checks.sort_values("passed", kind="stable")
    lines += [f"{'PASS' if row.passed else 'FAIL'}  {row.rule:<24} {row.message}" for row in ordered.itertuples()]
    overview = c.overview()[["dataset", "matched", "fixed", "newly_broken", "still_wrong", "baseline_only",
                             "candidate_only"]]
    return "\n".join(lines) + f"\n\n{frame_text(overview)}\n\n{_newly_broken(gate, limit)}"


def gate_junit(gate: GateResult, limit: int = 20) -> str:
    """A JUnit XML report: one test case per check (class = dataset), a failure with its numbers."""
    checks = gate.checks
    failures = str(int((~checks["passed"]).sum()))
    root = ET.Element("testsuites", name="mldebugger check", tests=str(len(checks)), failures=failures, errors="0")
    suite = ET.SubElement(root, "testsuite", name=SUITE, tests=str(len(checks)), failures=failures, errors="0",
                          skipped="0", time="0")
    properties = ET.SubElement(suite, "properties")
    for side in ("baseline", "candidate"):
        ET.SubElement(properties, "property", name=side, value=_label(getattr(gate.comparison, side)))
    for row in checks.itertuples():
        name = f"{row.rule}[{row.subject}]" if row.subject else row.rule
        case = ET.SubElement(suite, "testcase", classname=f"{SUITE}.{row.dataset}", name=name, time="0")
        if not row.passed:
            failure = ET.SubElement(case, "failure", message=row.message, type="RuleFailed")
            failure.text = row.message
    ET.SubElement(suite, "system-out").text = _newly_broken(gate, limit)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
