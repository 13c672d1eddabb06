"""``mldebugger compare`` and ``mldebugger check`` as a CI job runs them: subprocesses, exit codes, files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ml_debugger.cli import main
from tests.evaluator.compare.digits import Digits

RULES = ["--max-newly-broken-share", "0.02", "--max-category-rise", "critical_hotspot=0.01",
         "--max-code-rise", "CLS001=5", "--max-metric-drop", "accuracy=0.01"]

pytestmark = pytest.mark.slow  # trains and evaluates three real versions once per session


@pytest.fixture
def home(digits_home: tuple[Path, Digits]) -> Path:
    return digits_home[0]


def mldebugger(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ml_debugger.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def test_compare_prints_what_changed(home: Path) -> None:
    done = mldebugger("compare", "v1-eval", "v3/v3-eval", "--model", "digits", "--version", "v1", "--home", str(home),
                      "--limit", "5")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "baseline digits/v1/v1-eval -> candidate digits/v3/v3-eval" in out
    assert "each dataset at its latest evaluated epoch (val 0)" in out
    for section in ("-- Metrics", "-- Issue categories", "-- Category transitions on val", "-- Error codes",
                    "-- Hotspot clusters", "-- Newly broken, most confident first (5 of ", "-- Fixed (5 of "):
        assert section in out


def test_compare_as_json(home: Path) -> None:
    done = mldebugger("compare", "digits/v2/v2-eval", "digits/v2/v2-eval", "--model", "digits", "--home", str(home),
                      "--baseline-epoch", "0", "--format", "json", "--limit", "2")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert (data["baseline"]["epochs"], data["candidate"]["epochs"]) == ({"val": 0}, {"val": 1})
    assert len(data["tables"]["changes"]) == 2 and data["total_rows"]["changes"] > 2


def test_check_fails_on_the_held_out_class_with_the_failing_rules(home: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.xml"
    done = mldebugger("check", "--model", "digits", "--version", "v3", "--baseline", "v1/v1-eval", "--home", str(home),
                      *RULES, "--junit-xml", str(report), cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == ("mldebugger check FAILED (3 of 4 checks): candidate digits/v3/v3-eval against baseline "
                        "digits/v1/v1-eval")
    failed = [line for line in lines if line.startswith("FAIL")]
    assert [line.split()[1] for line in failed] == ["max_newly_broken_share", "max_category_rise", "max_code_rise"]
    assert " of 540 matched units = " in failed[0] and "allowed at most 0.02" in failed[0]
    assert "Newly broken units, most confident first (20 of " in done.stdout
    assert ET.parse(report).getroot().find("testsuite").get("failures") == "3"


def test_check_passes_after_training_longer(home: Path, tmp_path: Path) -> None:
    done = mldebugger("check", "--model", "digits", "--version", "v2", "--baseline", "v1/v1-eval", "--home", str(home),
                      *RULES, "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["passed"] and all(c["passed"] for c in data["checks"]) and len(data["checks"]) == 4


def test_check_reads_its_rules_and_baseline_from_pyproject(home: Path, tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.mldebugger.check]\nbaseline = "v2/v2-eval"\nmax_metric_drop = { accuracy = 0.01 }\n')
    done = mldebugger("check", "--model", "digits", "--version", "v3", "--home", str(home), "--format", "junit",
                      cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    case = ET.fromstring(done.stdout).find("testsuite/testcase")
    assert case.get("name") == "max_metric_drop[accuracy]" and "(drop 0.0" in case.find("failure").get("message")
    loose = mldebugger("check", "--model", "digits", "--version", "v3", "--home", str(home),
                       "--max-metric-drop", "accuracy=0.5", cwd=tmp_path)  # a flag overrides the file
    assert loose.returncode == 0, loose.stdout + loose.stderr


@pytest.mark.parametrize("args, message", [
    (["--baseline", "v1/v1-eval", "--max-metric-drop", "acc=0.1"], r"unknown metric(s) ['acc']"),
    (["--max-newly-broken", "0"], "no baseline: give --baseline"),
    (["--baseline", "v1/v1-eval"], "no rule to check"),
    (["--baseline", "v1/nothing", "--max-newly-broken", "0"], "nothing"),
    (["--baseline", "v1/v1-eval", "--max-newly-broken", "0", "--candidate-epoch", "last"], "an epoch must be"),
    (["--baseline", "v1/v1-eval", "--max-newly-broken", "0", "--config", "missing.toml"], "cannot read the rules file"),
    (["--baseline", "v1/v1-eval", "--max-newly-broken", "many"], "invalid int value"),
    (["--baseline", "v1/v1-eval", "--evaluate", "--candidate", "v3-eval"], "not allowed with argument"),
])
def test_check_usage_and_configuration_errors_exit_2(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, args: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)  # in this process: quicker than a subprocess per case
    try:
        status = main(["check", "--model", "digits", "--version", "v3", "--home", str(home), *args])
    except SystemExit as exit:  # argparse's usage errors
        status = exit.code
    assert status == 2
    assert message in capsys.readouterr().err


def test_check_evaluate_runs_a_fresh_evaluation_first(home: Path, tmp_path: Path) -> None:
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    done = mldebugger("check", "--model", "digits", "--version", "v2", "--baseline", "v1/v1-eval", "--home", str(copy),
                      "--evaluate", "--name", "ci-run", *RULES, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "evaluated digits/v2 as result 'ci-run'" in done.stderr
    assert "candidate digits/v2/ci-run against baseline digits/v1/v1-eval" in done.stdout
