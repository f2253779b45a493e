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


CONFIG = BENCH.parents[1] / "config"
PAPER = CONFIG / "paper.yaml"
SWEEPS = {"lg_rlss": "imagenet", "lg_rlrl": "imagenet", "nlg_rlrl": "imagenet_0.5"}
PAPER_KEYS = [(g, b) for g in SWEEPS for b in (16, 64, 256, 1024)]


def _grid_cost(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH.parent))
    return importlib.import_module("grid_cost")


def _paper_rows():
    """Bench rows for the paper's 12 (game, B) at the paper's sizes: row i at i + 1 steps/s
    (median of three windows), so that each (game, B) has its own speed."""
    flops = _bench_module().step_flops
    return [
        {"game": g, "batch": b, "steps_per_s": [i + 0.5, i + 1, i + 3], "device": "test CPU"}
        | {"step_flops": flops(configs.get_config(g, SWEEPS[g], {"batch_size": b}), b, 2048)}
        for i, (g, b) in enumerate(PAPER_KEYS)
    ]


def test_grid_cost_of_the_paper_grid(tmp_path, monkeypatch, capsys):
    """Each (game, B): 6 runs of 750,000 steps at its own speed, i + 1 steps/s for row i, so
    4,500,000 / (i + 1) / 3,600 hours; 72 runs in all."""
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps(_paper_rows()))
    _grid_cost(monkeypatch).main([str(bench), "--configfile", str(PAPER)])
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("training only, on test CPU")
    hours = [4_500_000 / (i + 1) / 3600 for i in range(len(PAPER_KEYS))]
    for i, ((game, batch), line) in enumerate(zip(PAPER_KEYS, out[2:-1], strict=True)):
        assert line.split() == [game, str(batch), "6", "4,500,000", str(i + 1), f"{hours[i]:,.1f}"]
    assert out[-1] == f"total: 72 runs, {sum(hours):,.0f} hours ({sum(hours) / 24:,.1f} days)"


def _mutated(rows, i, **fields):
    return [*rows[:i], {**rows[i], **fields}, *rows[i + 1 :]]


@pytest.mark.parametrize(
    "case,message",
    [
        ("other sizes", r"lg_s-imagenet-b16-p0.0-s0: its step .* not the one in .*bench.json"),
        ("shapes grid", r"lg_s-shapes_logits-b16-p0.0-s0: its step .* at D = 512\) is not"),
        ("own data", r"train.datasets: 'mydata' is not a built-in dataset"),
        ("shapes width", r"lg_s-shapes_logits-b16-p0.0-s0: its step .* at D = 256\) is not"),
        ("shapes prebuilt", r"data.shapes.source: 'prebuilt': the width of shapes data"),
        ("overridden batch", r"train.overrides.batch_size: set by train.batch_sizes"),
        ("config not a mapping", r"\(top level\): \[1, 2\] is not of type 'object'"),
        ("row missing", r"nlg-imagenet-b1024-p0.5-s0: .*bench.json has no nlg_rlrl at B = 1024"),
        ("not rows", r"bench.json: not a bench/train_throughput.py --json file"),
        ("no speeds", r"bench.json: row 3: `steps_per_s` missing or malformed"),
        ("NaN speed", r"bench.json: row 3: `steps_per_s` missing or malformed"),
        ("text speed", r"bench.json: row 3: `steps_per_s` missing or malformed"),
        ("null device", r"bench.json: row 3: `device` missing or malformed"),
        ("row not a mapping", r"bench.json: row 3: not a mapping"),
        ("bool batch", r"bench.json: row 3: `batch` missing or malformed"),
        ("second row", r"bench.json: row 12: a second row for lg_rlss at B = 16"),
        ("two devices", r"bench.json: rows from more than one device"),
    ],
)
def test_grid_cost_refuses_what_it_cannot_cost(case, message, tmp_path, monkeypatch, capsys):
    """A grid the bench did not measure, a config the pipeline refuses, a malformed bench
    file: each an error naming the run, key or row, and nothing printed."""
    rows, config = _paper_rows(), PAPER.read_text()
    if case == "other sizes":
        config = config.replace("overrides: {}", "overrides: {speaker.lstm_size: 64}", 1)
    elif case == "overridden batch":
        config = config.replace("overrides: {}", "overrides: {batch_size: 16}", 1)
    elif case == "config not a mapping":
        config = "[1, 2]"
    elif case == "row missing":
        rows = rows[:-1]
    elif case == "not rows":
        rows = {"rows": rows}
    elif case == "no speeds":
        rows = _mutated(rows, 3, steps_per_s=[])
    elif case == "NaN speed":
        rows = _mutated(rows, 3, steps_per_s=[1.0, float("nan")])
    elif case == "text speed":
        rows = _mutated(rows, 3, steps_per_s=["fast"])
    elif case == "null device":
        rows = _mutated(rows, 3, device=None)
    elif case == "row not a mapping":
        rows = [*rows[:3], [1, 2], *rows[4:]]
    elif case == "shapes width":
        config = (CONFIG / "config.yaml").read_text().replace("width: 512", "width: 256", 1)
    elif case == "shapes prebuilt":
        config = (
            (CONFIG / "config.yaml").read_text().replace("source: generate", "source: prebuilt")
        )
    elif case == "bool batch":
        rows = _mutated(rows, 3, batch=True)
    elif case == "second row":
        rows = [*rows, rows[0]]
    elif case == "two devices":
        rows = _mutated(rows, 5, device="another GPU")
    configfile = {"shapes grid": CONFIG / "config.yaml", "own data": CONFIG / "own.yaml"}.get(
        case, tmp_path / "grid.yaml"
    )
    (tmp_path / "grid.yaml").write_text(config)
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps(rows))
    with pytest.raises(SystemExit, match=message):
        _grid_cost(monkeypatch).main([str(bench), "--configfile", str(configfile)])
    assert capsys.readouterr().out == ""
