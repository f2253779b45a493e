"""The training benchmark: its analytic FLOP count and one real (tiny) run of `make bench`."""

import importlib
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
    assert result["device"]


PAPER = BENCH.parents[1] / "config" / "paper.yaml"
SWEEPS = {"lg_rlss": "imagenet", "lg_rlrl": "imagenet", "nlg_rlrl": "imagenet_0.5"}


def _grid_cost(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH.parent))
    return importlib.import_module("grid_cost")


def _paper_bench(tmp_path, speeds=(1.0, 2.0, 4.0), skip=()):
    """A bench JSON for the paper's 12 (game, B) at the paper's sizes, `speeds` steps/s each."""
    flops = _bench_module().step_flops
    rows = [
        {"game": g, "batch": b, "steps_per_s": list(speeds), "device": "test CPU"}
        | {"step_flops": flops(configs.get_config(g, SWEEPS[g], {"batch_size": b}), b, 2048)}
        for g in SWEEPS
        for b in (16, 64, 256, 1024)
        if (g, b) not in skip
    ]
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(rows))
    return path


def test_grid_cost_of_the_paper_grid(tmp_path, monkeypatch, capsys):
    """72 runs of 750,000 steps at a median of 2 steps/s: 72 · 750,000 / 2 / 3,600 = 7,500 h."""
    _grid_cost(monkeypatch).main([str(_paper_bench(tmp_path)), "--configfile", str(PAPER)])
    out = capsys.readouterr().out
    assert "on test CPU" in out
    assert out.splitlines()[-1] == "total: 72 runs, 7,500 hours (312.5 days)"
    assert "nlg_rlrl   1024     6    4,500,000        2     625.0" in out


def test_grid_cost_refuses_a_bench_that_does_not_apply(tmp_path, monkeypatch):
    """Another step than the benched one, a (game, B) not benched, a malformed bench file:
    each an error naming the run or the row, before anything is printed."""
    grid_cost = _grid_cost(monkeypatch)
    other = tmp_path / "other.yaml"
    other.write_text(
        PAPER.read_text().replace("overrides: {}", "overrides: {speaker.lstm_size: 64}", 1)
    )
    with pytest.raises(SystemExit, match=r"lg_s-imagenet-b16-p0.0-s0: its step .* not the benched"):
        grid_cost.main([str(_paper_bench(tmp_path)), "--configfile", str(other)])
    missing = _paper_bench(tmp_path, skip={("nlg_rlrl", 1024)})
    with pytest.raises(SystemExit, match=r"nlg-imagenet-b1024-p0.5-s0: the bench has no nlg_rlrl"):
        grid_cost.main([str(missing), "--configfile", str(PAPER)])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"game": "lg_rlss", "batch": 16, "step_flops": 1}]))
    with pytest.raises(SystemExit, match=r"bad.json: row 0: `steps_per_s` missing"):
        grid_cost.main([str(bad), "--configfile", str(PAPER)])
