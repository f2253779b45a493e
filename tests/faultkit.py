"""Helpers of the fault-injection tests: the scripts as real processes, output comparison."""

import csv
import importlib.util
import io
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
from conftest import SMALL

from noisy_emcom import checkpoint

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "workflow" / "scripts"
TIMINGS = {"steps_per_second", "seconds"}  # wall-clock figures, different in every run


def train_args(run_dir, steps=8, per_call=2, log_every=4, ckpt_every=2, preset="lg_rlrl"):
    """train.py arguments of a small debug run."""
    sizes = [f"--config.{k}={v}" for k, v in SMALL.items()]
    schedule = {
        "training_steps": steps,
        "steps_per_call": per_call,
        "log_every": log_every,
        "checkpoint_every": ckpt_every,
    }
    return [f"--config={preset}:debug", *sizes, *(f"--config.{k}={v}" for k, v in schedule.items()),
            "--run-dir", str(run_dir), "--no-progress"]  # fmt: skip


def load_script(name: str):
    """A workflow script as a module (its `main(argv)` runs in this process)."""
    spec = importlib.util.spec_from_file_location(f"{name}_script", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def script_env(**extra):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **extra}
    return {k: v for k, v in env.items() if v is not None}


LIMITED = (
    "import os, resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
    "n = int(sys.argv[1]); resource.setrlimit(resource.RLIMIT_FSIZE, (n, n)); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])"
)


def file_size_limited(n_bytes: int, argv) -> list[str]:
    """`argv` (Python arguments) run with files limited to `n_bytes`: a write past it fails
    with EFBIG (SIGXFSZ ignored), as on a full disk. No preexec_fn (unsafe with threads)."""
    return [sys.executable, "-c", LIMITED, str(n_bytes), *map(str, argv)]


def start(script: str, args, limit: int | None = None, **kw) -> subprocess.Popen:
    argv = [str(SCRIPTS / f"{script}.py"), *map(str, args)]
    return subprocess.Popen(
        file_size_limited(limit, argv) if limit else [sys.executable, *argv],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=kw.pop("env", script_env()),
        **kw,
    )


def run(script: str, args, timeout=600, **kw) -> subprocess.CompletedProcess:
    proc = start(script, args, **kw)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def snapshot(folder) -> dict[str, bytes]:
    """Every file under `folder` → its bytes."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def without_timings(x):
    """A loaded payload without its wall-clock figures; arrays as (dtype, shape, bytes)."""
    if isinstance(x, dict):
        return {k: without_timings(v) for k, v in x.items() if k not in TIMINGS}
    if isinstance(x, (list, tuple)):
        return [without_timings(v) for v in x]
    if isinstance(x, (np.ndarray, np.generic)):
        a = np.asarray(x)
        return (str(a.dtype), a.shape, a.tobytes())
    if isinstance(x, float) and x != x:
        return "nan"
    return x


def csv_without_timings(data: bytes) -> list[dict]:
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    return [{k: v for k, v in row.items() if k not in TIMINGS} for row in rows]


def assert_same_outputs(a, b):
    """Two output folders hold the same files with the same contents, bit for bit, except
    the wall-clock figures (steps per second) of the logs and checkpoints."""
    sa, sb = snapshot(a), snapshot(b)
    assert sorted(sa) == sorted(sb)
    for name, data in sa.items():
        if name.endswith(".ckpt"):
            pa = without_timings(checkpoint.decode(data, name))
            pb = without_timings(checkpoint.decode(sb[name], name))
            assert pa == pb, name
        elif name.endswith(".csv") and "steps_per_second" in data.decode().splitlines()[0]:
            assert csv_without_timings(data) == csv_without_timings(sb[name]), name
        else:
            assert data == sb[name], name


def assert_same_tree(a, b):
    """Same pytree structure, dtypes and bytes."""
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
