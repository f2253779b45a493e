#!/usr/bin/env python
"""Training throughput per game and batch size at the paper's sizes, against the machine's
matmul speed (docs/performance.md#training-speed).

    python bench/train_throughput.py [--batch-sizes 16 64 256 1024] [--window 10] [--repeats 3]

Each (game, B) runs in its own process (so its peak memory is its own): compile, then
`--repeats` windows of at least `--window` seconds of the training loop (`train.py`'s: batch
indices, one dispatch of `steps_per_call` updates, statistics fetched and checked), then as
many windows of a jitted chain of matmuls of the step's dominant shape (the listener LSTM's
[B, E+H] @ [E+H, 4H]). Printed: steps/s and games/s (median, min–max), the analytic FLOPs of
a step (`step_flops`), achieved FLOP/s, the matmul's FLOP/s and the ratio, peak resident
memory, and the share of wall time spent outside compiled code (Python between dispatches).
"""

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

GAMES = (("lg_rlss", "imagenet"), ("lg_rlrl", "imagenet"), ("nlg_rlrl", "imagenet_0.5"))
# Updates per dispatch (the default config's 500 at B = 16): 3-5 s each on a 2-core CPU.
STEPS_PER_CALL = {16: 500, 64: 200, 256: 50, 1024: 10}


def matmul_flops(m: int, k: int, n: int) -> int:
    """[m,k] @ [k,n]: one multiply and one add per term."""
    return 2 * m * k * n


def step_flops(cfg, batch: int, dim: int) -> int:
    """Matmul FLOPs of one training update (elementwise work not counted).

    Speaker (sizes H_s, E_s, V, T): sampling pass without gradient, then the scored ("forced")
    pass with its gradient, which takes the sampling pass's LSTM values instead of running the
    LSTM again; the target speaker's forced pass (forward only; under `speaker.target =
    original` a sampling pass and a forced pass that reuses it). Listener (H_l, E_l, hidden h,
    K = B candidates): forward and gradient. A gradient costs two matmuls per forward matmul
    (inputs and weights), one where the input is data (x, the candidates).
    """
    b, t, v = batch, cfg.length, cfg.vocab_size
    hs, es = cfg.speaker.lstm_size, cfg.speaker.embed_dim
    hl, el, h = cfg.listener.lstm_size, cfg.listener.embed_dim, cfg.listener.hidden

    def speaker_forward():
        return (
            matmul_flops(b, dim, 2 * hs)
            + t * matmul_flops(b, es + hs, 4 * hs)
            + t * (matmul_flops(b, hs, v) + matmul_flops(b, hs, 1))
        )

    speaker_backward = 2 * speaker_forward() - matmul_flops(b, dim, 2 * hs)
    sampled = 2 if cfg.speaker.get("target", "copy") == "original" else 1  # sampling passes
    reused_lstm = sampled * t * matmul_flops(b, es + hs, 4 * hs)  # one per forced pass on a trace
    speaker = (2 + sampled) * speaker_forward() - reused_lstm + speaker_backward

    lstm = t * matmul_flops(b, el + hl, 4 * hl)
    projections = matmul_flops(b, hl, h) + matmul_flops(b, dim, h)
    scores = matmul_flops(b, h, b)
    value = 0
    if cfg.listener.type == "rl":
        widths = (b, *cfg.listener.value_hidden, 1)
        value = sum(matmul_flops(b, i, o) for i, o in zip(widths[:-1], widths[1:], strict=True))
    listener_forward = lstm + projections + scores + value
    listener_backward = 2 * listener_forward - matmul_flops(b, dim, h)
    return speaker + listener_forward + listener_backward


def device_name(device) -> str:
    """A GPU's name; on a CPU its model (/proc/cpuinfo) and the cores this process may use."""
    if device.platform != "cpu":
        return device.device_kind
    model = "CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {len(os.sched_getaffinity(0))} cores"


def timed_windows(run_once, window: float, repeats: int) -> list[tuple[float, float, int]]:
    """`repeats` windows of ≥ `window` s: (wall seconds, seconds in compiled code, calls)."""
    out = []
    for _ in range(repeats):
        wall = compiled = 0.0
        calls = 0
        start = time.perf_counter()
        while wall < window:
            compiled += run_once()
            calls += 1
            wall = time.perf_counter() - start
        out.append((wall, compiled, calls))
    return out


def worker(preset: str, sweep: str, batch: int, dim: int, window: float, repeats: int) -> dict:
    import jax
    import jax.numpy as jnp

    from noisy_emcom import configs, train

    per_call = STEPS_PER_CALL.get(batch, max(1, 8000 // batch))
    cfg = configs.get_config(
        preset,
        sweep,
        {
            "batch_size": batch,
            "steps_per_call": per_call,
            "training_steps": 1000 * per_call,
            "log_every": 1000 * per_call,
            "checkpoint_every": 1000 * per_call,
        },
    )
    n = max(4 * batch, 4096)
    table = jax.device_put(np.random.default_rng(0).standard_normal((n, dim), np.float32))
    k_init, k_data, k_train = train.root_keys(0)
    tic = time.perf_counter()
    state = train.init_state(cfg, train.make_nets(cfg), dim, k_init)
    chunk = train.make_train_chunk(cfg)
    indices = train.make_chunk_indices(batch, n, per_call)
    loop = {"cursor": train.start_cursor(k_data, 0, batch, n), "state": state}

    def dispatch() -> float:
        """One iteration of train.train's loop; returns the seconds spent in compiled code."""
        t0 = time.perf_counter()
        cursor, idx = jax.block_until_ready(indices(loop["cursor"], k_data))
        state, stats = jax.block_until_ready(chunk(loop["state"], table, idx, k_train))
        inside = time.perf_counter() - t0
        stats = jax.device_get(stats)
        for name in train.ALWAYS_FINITE:
            assert np.all(np.isfinite(stats[name])), name
        means = {k: float(np.mean(v)) for k, v in stats.items()}  # noqa: F841 (as train.py)
        loop.update(cursor=cursor, state=state)
        return inside

    dispatch()
    startup = time.perf_counter() - tic
    train_windows = timed_windows(dispatch, window, repeats)

    rows, width = cfg.listener.embed_dim + cfg.listener.lstm_size, 4 * cfg.listener.lstm_size
    a = jnp.ones((batch, rows), jnp.float32)
    w_in = jax.random.normal(jax.random.PRNGKey(0), (rows, width)) / np.sqrt(rows)
    w_out = jax.random.normal(jax.random.PRNGKey(1), (width, rows)) / np.sqrt(width)
    chain = max(1, int(2e9 // (2 * matmul_flops(batch, rows, width))))

    @jax.jit
    def matmuls(a, w_in, w_out):  # `chain` dependent pairs [B,R]@[R,4H]@[4H,R]; nothing to hoist
        return jax.lax.fori_loop(0, chain, lambda _, z: jnp.tanh((z @ w_in) @ w_out), a)

    jax.block_until_ready(matmuls(a, w_in, w_out))

    def matmul_call() -> float:
        t0 = time.perf_counter()
        jax.block_until_ready(matmuls(a, w_in, w_out))
        return time.perf_counter() - t0

    mm_windows = timed_windows(matmul_call, window, repeats)
    return {
        "device": device_name(jax.devices()[0]),
        "game": preset,
        "batch": batch,
        "steps_per_call": per_call,
        "startup_s": startup,
        "step_flops": step_flops(cfg, batch, dim),
        "steps_per_s": [calls * per_call / wall for wall, _, calls in train_windows],
        "outside_share": [1.0 - inside / wall for wall, inside, _ in train_windows],
        "matmul_flops_per_s": [
            calls * chain * 2 * matmul_flops(batch, rows, width) / wall
            for wall, _, calls in mm_windows
        ],
        "matmul_shape": [batch, rows, width],
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def spread(values) -> str:
    return f"{statistics.median(values):.3g} [{min(values):.3g}–{max(values):.3g}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 64, 256, 1024])
    parser.add_argument("--games", nargs="+", default=[g for g, _ in GAMES])
    parser.add_argument("--window", type=float, default=10.0, help="seconds per timed window")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write every measurement to this file")
    parser.add_argument("--worker", nargs=2, metavar=("GAME", "B"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    sweeps = dict(GAMES)
    if args.worker:
        game, batch = args.worker[0], int(args.worker[1])
        result = worker(game, sweeps[game], batch, args.dim, args.window, args.repeats)
        print(json.dumps(result))
        return
    import jax

    print(
        f"device: {device_name(jax.devices()[0])}; D = {args.dim}, speaker LSTM 256, listener "
        f"LSTM 512; {args.repeats} windows of ≥ {args.window:g} s; median [min–max]"
    )
    header = (
        f"{'game':9s} {'B':>5s} {'steps/s':>22s} {'games/s':>8s} {'GFLOP/step':>10s} "
        f"{'GFLOP/s':>8s} {'matmul GFLOP/s':>22s} {'ratio':>5s} {'peak MiB':>8s} "
        f"{'outside':>7s} {'start s':>7s}"
    )
    print(header, flush=True)
    results = []
    for game in args.games:
        for batch in args.batch_sizes:
            cmd = [sys.executable, __file__, "--worker", game, str(batch), "--dim", str(args.dim)]
            cmd += ["--window", str(args.window), "--repeats", str(args.repeats)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"{game} B = {batch} failed:\n{done.stderr[-2000:]}")
            r = json.loads(done.stdout.strip().splitlines()[-1])
            results.append(r)
            sps = statistics.median(r["steps_per_s"])
            achieved = sps * r["step_flops"]
            peak = statistics.median(r["matmul_flops_per_s"])
            mm = [x / 1e9 for x in r["matmul_flops_per_s"]]
            print(
                f"{game:9s} {batch:5d} {spread(r['steps_per_s']):>22s} {sps * batch:8.0f} "
                f"{r['step_flops'] / 1e9:10.3f} {achieved / 1e9:8.1f} {spread(mm):>22s} "
                f"{achieved / peak:5.2f} {r['peak_mib']:8.0f} "
                f"{100 * statistics.median(r['outside_share']):6.1f}% {r['startup_s']:7.1f}",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
