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


LOGGED = SCRIPTS[0].parent / "logged.sh"


@pytest.mark.parametrize(
    "script, shown",
    [
        ("print('working'); import sys; sys.exit('error: x.csv: column a is empty')",
         "error: x.csv: column a is empty\n"),
        ("print('working'); raise ValueError('bad')", "ValueError: bad\n"),  # the log's tail
        ("print('working')", ""),
    ],
)  # fmt: skip
def test_a_failed_job_shows_its_error_beside_its_log(tmp_path, script, shown):
    """The rules run every script through logged.sh: all output goes to the job's log, and a
    failure's `error:` line (or else the log's last lines) is shown on stderr too."""
    log = tmp_path / "job.log"
    done = subprocess.run(
        ["bash", str(LOGGED), str(log), sys.executable, "-c", script],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (done.returncode != 0) == bool(shown)
    assert done.stdout == "" and done.stderr.endswith(shown)
    assert log.read_text().startswith("working\n")
    if shown.startswith("error"):
        assert done.stderr == shown  # the error line only


@pytest.mark.parametrize(
    "script, flags",
    [("train", ["--config=lg_rlrl:debug", "--run-dir"]),
     ("etl_train", ["--checkpoint", "x.ckpt", "--config=etl:debug_classification_0.0",
                    "--out-dir"])],
)  # fmt: skip
def test_an_output_folder_that_is_a_file_is_a_usage_error(tmp_path, script, flags):
    taken = tmp_path / "taken"
    taken.write_text("a file the user keeps")
    done = subprocess.run(
        [sys.executable, str(SCRIPTS[0].parent / f"{script}.py"), *flags, str(taken)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and f"{taken} is a file" in done.stderr
    assert "Traceback" not in done.stderr and taken.read_text() == "a file the user keeps"
