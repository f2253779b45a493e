"""Fault injection by signals: SIGTERM and SIGKILL at random steps of workflow/scripts/train.py
(a real process), then a rerun; and a killed Snakemake. Every output file of the resumed run
must equal the uninterrupted run's, bit for bit (the wall-clock steps per second excepted)."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import small_config
from faultkit import ROOT, assert_same_outputs, run, script_env, snapshot, start, train_args

from noisy_emcom import train
from noisy_emcom.synthetic import clustered_features

TABLE, _ = clustered_features(256, dim=16, n_clusters=32, seed=0)
# One dispatch per step, a checkpoint every 2 steps and a log row every 3: stops land inside
# logging windows, and often during a checkpoint write.
LONG = {"steps": 300, "per_call": 1, "log_every": 3, "ckpt_every": 2}


def test_stop_inside_a_logging_window_writes_the_same_files(tmp_path):
    cfg = small_config(
        "lg_rlss", training_steps=12, steps_per_call=2, log_every=4, checkpoint_every=2
    )
    train.train(cfg, TABLE, tmp_path / "full", progress=False)
    for stop in (2, 6, 10):  # each inside a window of 4 steps
        part = train.train(cfg, TABLE, tmp_path / "part", progress=False, stop_at_step=stop)
        assert not part.finished and int(part.state.step) == stop
    train.train(cfg, TABLE, tmp_path / "part", progress=False)
    assert_same_outputs(tmp_path / "full", tmp_path / "part")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run (same script, same machine)."""
    out = tmp_path_factory.mktemp("reference") / "run"
    res = run("train", train_args(out, **LONG))
    assert res.returncode == 0, res.stderr[-3000:]
    return out


def _wait_for(path: Path, proc: subprocess.Popen, timeout=300):
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError("".join(o or "" for o in proc.communicate())[-3000:])
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
@pytest.mark.parametrize("seed", [0, 1])
def test_signal_at_a_random_step_then_rerun_equals_the_uninterrupted_run(
    tmp_path, reference, sig, seed
):
    out = tmp_path / "run"
    delay = random.Random(seed).uniform(0.0, 1.0)
    for attempt in range(3):  # the kill must land before the end: shorter delays if not
        proc = start("train", train_args(out, **LONG))
        _wait_for(out / "checkpoints" / "step_000000002.ckpt", proc)  # training under way
        time.sleep(delay / 4**attempt)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=300)
        if not (out / "final.ckpt").exists():
            break
        for p in sorted(out.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
    else:
        pytest.fail("the run always finished before the signal")
    stopped_at = max(int(p.stem[5:]) for p in (out / "checkpoints").glob("step_*.ckpt"))
    assert 2 <= stopped_at < LONG["steps"]
    if sig == signal.SIGTERM:
        assert proc.returncode == 143 and "rerun to resume" in err, err[-3000:]
    else:
        assert proc.returncode == -signal.SIGKILL
    res = run("train", train_args(out, **LONG))
    assert res.returncode == 0, res.stderr[-3000:]
    assert_same_outputs(reference, out)
    if sig == signal.SIGTERM and seed == 0:  # and the test tables of the two models
        tables = []
        for run_dir in (reference, out):
            csv = run_dir.parent / f"{run_dir.parent.name}-channel.csv"
            args = ["--mode", "channel", "--checkpoint", run_dir / "final.ckpt", "--out", csv,
                    "--config.eval.epochs=1", "--config.eval.batch_sizes=(8,)"]  # fmt: skip
            res = run("test", args)
            assert res.returncode == 0, res.stderr[-3000:]
            tables.append(csv.read_bytes())
        assert tables[0] == tables[1]


# --------------------------------------------------------------------------------------------
# Snakemake
# --------------------------------------------------------------------------------------------

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--nolock", "--cores", "1"]


def _snakemake(config: Path, *args) -> subprocess.Popen:
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"  # the rules call `python`
    return subprocess.Popen(
        [*SNAKEMAKE, *map(str, args), "--configfile", str(config)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=script_env(PATH=path),
        start_new_session=True,  # its own process group, as in a terminal
    )


def _train_pids(run_dir: Path) -> list[int]:
    """Live processes running train.py into `run_dir`."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and any(c.endswith(b"train.py") for c in cmd):
            if str(run_dir).encode() in cmd:
                pids.append(int(proc.name))
    return pids


def _wait_until_gone(run_dir: Path, timeout=60):
    deadline = time.monotonic() + timeout
    while _train_pids(run_dir):
        assert time.monotonic() < deadline, f"train.py still writes into {run_dir}"
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.xdist_group("workflow")
def test_killed_snakemake_stops_its_jobs_and_rerun_incomplete_equals_a_whole_run(tmp_path):
    results = tmp_path / "results"
    cfg = yaml.safe_load((ROOT / "config/quick.yaml").read_text())
    cfg.update(results=str(results), data_dir=str(results / "tfds"))
    cfg["train"].update(games=["lg_rl"], seeds=[0, 1, 2])
    # Long enough to be stopped while training: 3000 steps, a checkpoint every 100.
    overrides = {**cfg["train"]["overrides"], "training_steps": 3000, "log_every": 50,
                 "checkpoint_every": 100}  # fmt: skip
    cfg["train"]["overrides"] = overrides
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    runs = {seed: results / "runs" / f"lg_rl-shapes_logits-b8-p0.0-s{seed}" for seed in (0, 1, 2)}

    # SIGKILL: Snakemake dies at once and its job's shell survives; the job stops by itself
    # (lifeline: a checkpoint, then exit) instead of writing on.
    sm = _snakemake(config, runs[0] / "final.ckpt")
    _wait_for(runs[0] / "checkpoints" / "step_000000100.ckpt", sm, timeout=900)
    assert _train_pids(runs[0])
    sm.send_signal(signal.SIGKILL)
    sm.wait()
    _wait_until_gone(runs[0])
    assert not (runs[0] / "final.ckpt").exists()
    stopped = snapshot(runs[0])
    time.sleep(2)
    assert snapshot(runs[0]) == stopped  # nothing writes any more
    sm = _snakemake(config, runs[0] / "final.ckpt", "--rerun-incomplete")
    log, _ = sm.communicate(timeout=900)
    assert sm.returncode == 0, log[-3000:]

    # The same job's command run once without interruption (same XLA flags as the jobs).
    args = [
        f"--config.{k}={v}" for k, v in {**overrides, "batch_size": 8, "random_seed": 0}.items()
    ]
    env = script_env(XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} {cfg['xla_flags']}".strip())
    ref = tmp_path / "ref"
    res = run("train", ["--config=lg_rlrl:shapes_logits", *args, "--data-dir", results / "tfds",
                        "--run-dir", ref, "--no-progress"], env=env)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert_same_outputs(ref, runs[0])

    # SIGTERM (or SIGINT) to Snakemake alone: it schedules nothing new but waits for its
    # running job, which finishes normally; no process is left behind.
    sm = _snakemake(config, runs[1] / "final.ckpt")
    _wait_for(runs[1] / "checkpoints" / "step_000000100.ckpt", sm, timeout=900)
    sm.send_signal(signal.SIGTERM)
    log, _ = sm.communicate(timeout=900)
    assert "Will exit after finishing currently running jobs" in log, log[-3000:]
    _wait_until_gone(runs[1])
    assert (runs[1] / "final.ckpt").exists()
    dry = subprocess.run(
        [*SNAKEMAKE, "-n", str(runs[1] / "final.ckpt"), "--configfile", str(config)],
        cwd=ROOT, capture_output=True, text=True, env=script_env(),
    )  # fmt: skip
    assert "Nothing to be done" in dry.stdout + dry.stderr

    # SIGTERM to Snakemake's process group (as Ctrl-C, SLURM and `kill -- -PGID` do): the job
    # writes a checkpoint and exits 143 at once; the rerun resumes from that checkpoint.
    sm = _snakemake(config, runs[2] / "final.ckpt")
    _wait_for(runs[2] / "checkpoints" / "step_000000100.ckpt", sm, timeout=900)
    os.killpg(sm.pid, signal.SIGTERM)
    log, _ = sm.communicate(timeout=120)
    assert sm.returncode != 0
    _wait_until_gone(runs[2])  # the job checkpoints and exits (slower on a loaded machine)
    assert not (runs[2] / "final.ckpt").exists()
    job_log = (results / "logs" / "train" / f"{runs[2].name}.log").read_text()
    assert "interrupted at step" in job_log, job_log[-2000:]
    sm = _snakemake(config, runs[2] / "final.ckpt", "--rerun-incomplete")
    log, _ = sm.communicate(timeout=900)
    assert sm.returncode == 0 and (runs[2] / "final.ckpt").exists(), log[-3000:]


FAKE_SNAKEMAKE = """#!{python}
import subprocess, sys, time
subprocess.Popen(["bash", "-c", "set -e; {python} {child} {marker}; true"])
time.sleep(600)
"""
CHILD = """
import signal, sys, time
from pathlib import Path
from noisy_emcom import lifeline
marker = Path(sys.argv[1])
def stop(*_):
    marker.with_suffix(".stopped").write_text("SIGTERM")
    sys.exit(143)
signal.signal(signal.SIGTERM, stop)
assert lifeline.watch_snakemake(interval=0.1) is not None
while True:
    marker.write_text(str(time.time()))
    time.sleep(0.05)
"""


def test_lifeline_stops_a_job_whose_snakemake_was_killed(tmp_path):
    """A process named snakemake starts `bash -c "python child"` and is SIGKILLed: bash
    survives, the child gets SIGTERM from its lifeline and stops writing."""
    child, marker = tmp_path / "child.py", tmp_path / "alive"
    child.write_text(CHILD)
    fake = tmp_path / "snakemake"
    fake.write_text(FAKE_SNAKEMAKE.format(python=sys.executable, child=child, marker=marker))
    fake.chmod(0o755)
    proc = subprocess.Popen([sys.executable, str(fake)], env=script_env())
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 30
    while not marker.with_suffix(".stopped").exists():
        assert time.monotonic() < deadline, "the orphaned job was not stopped"
        time.sleep(0.05)
    time.sleep(0.5)
    last = marker.read_text()
    time.sleep(0.5)
    assert marker.read_text() == last  # nothing writes any more
    # A process without a Snakemake ancestor watches nothing.
    from noisy_emcom import lifeline

    assert lifeline.snakemake_ancestor() is None or "snakemake" in " ".join(sys.argv)
