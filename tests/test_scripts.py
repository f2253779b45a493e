"""Every command-line script answers `--help` with its usage and exit status 0."""

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parents[1] / "workflow" / "scripts").glob("*.py"))


def test_every_script_is_listed():
    assert len(SCRIPTS) >= 11 and {p.stem for p in SCRIPTS} >= {"train", "etl_train", "test"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_help_exits_zero(script):
    done = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage:") and "Traceback" not in done.stderr
    assert f"{script.name}" in done.stdout.splitlines()[0]


def test_missing_config_is_a_usage_error_not_a_traceback():
    done = subprocess.run(
        [sys.executable, str(SCRIPTS[0].parent / "train.py"), "--run-dir", "x"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and "required: --config" in done.stderr
    assert "Traceback" not in done.stderr
