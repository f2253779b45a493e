"""The training benchmark: its analytic FLOP count and one real (tiny) run of `make bench`."""

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest
from jax.extend import core as jcore

from noisy_emcom import configs, train

BENCH = Path(__file__).resolve().parents[1] / "bench" / "train_throughput.py"


def _bench_module():
    spec = importlib.util.spec_from_file_location("train_throughput", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dot_flops(jaxpr) -> int:
    """2·batch·M·K·N summed over every dot_general of a jaxpr, a scan's body times its length."""
    total = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
            a, b = eqn.invars[0].aval.shape, eqn.invars[1].aval.shape
            k, batch = math.prod(a[i] for i in lc), math.prod(a[i] for i in lb)
            m = math.prod(s for i, s in enumerate(a) if i not in (*lc, *lb))
            n = math.prod(s for i, s in enumerate(b) if i not in (*rc, *rb))
            total += 2 * batch * m * k * n
            continue
        times = eqn.params["length"] if eqn.primitive.name == "scan" else 1
        for value in eqn.params.values():
            for sub in value if isinstance(value, tuple | list) else (value,):
                if isinstance(sub, jcore.ClosedJaxpr):
                    total += times * dot_flops(sub.jaxpr)
                elif isinstance(sub, jcore.Jaxpr):
                    total += times * dot_flops(sub)
    return total


@pytest.mark.parametrize(
    "preset,sweep,target",
    [
        ("lg_rlss", "debug", "copy"),
        ("lg_rlrl", "debug", "copy"),
        ("nlg_rlrl", "debug_0.5", "copy"),
        ("lg_rlrl", "debug", "original"),
    ],
)
def test_step_flops_counts_every_matmul_of_the_traced_step(preset, sweep, target):
    """`step_flops` (from the network sizes) equals the matmul FLOPs of the training step's
    jaxpr, gradient included, exactly."""
    batch, dim = 8, 24
    cfg = configs.get_config(preset, sweep, {"batch_size": batch, "speaker.target": target})
    nets = train.make_nets(cfg)
    state = train.init_state(cfg, nets, dim, jax.random.PRNGKey(0))
    step = train.make_train_step(cfg, nets)
    traced = jax.make_jaxpr(step)(state, jnp.zeros((batch, dim)), jax.random.PRNGKey(1))
    assert _bench_module().step_flops(cfg, batch, dim) == dot_flops(traced.jaxpr) > 0


@pytest.mark.slow
def test_bench_runs_and_reports_every_column(tmp_path):
    """`bench/train_throughput.py` end to end on one setting with short windows."""
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(BENCH), "--games", "lg_rlrl", "--batch-sizes", "8"]
    cmd += ["--dim", "64", "--window", "0.2", "--repeats", "2", "--json", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    row = done.stdout.strip().splitlines()[-1].split()
    assert row[:2] == ["lg_rlrl", "8"] and row[-2].endswith("%")
    (result,) = json.loads(out.read_text())
    assert len(result["steps_per_s"]) == len(result["matmul_flops_per_s"]) == 2
    assert all(x > 0 for x in result["steps_per_s"] + result["matmul_flops_per_s"])
    assert all(0.0 <= s < 1.0 for s in result["outside_share"])
    assert result["matmul_shape"] == [8, 522, 2048] and result["peak_mib"] > 0
