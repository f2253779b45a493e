#!/usr/bin/env python
"""Training throughput (steps/s and games/s after compilation) per game and batch size.

    python bench/train_throughput.py [--dim 2048] [--batch-sizes 16 64 256 1024] [--steps 20]

Paper network sizes (speaker LSTM 256, listener LSTM 512). One chunk of `--steps` updates is
run first to compile; the next chunk is timed (device-resident table, lax.scan dispatch).
Peak resident memory of the process is printed at the end.
"""

import argparse
import resource
import time

import jax
import numpy as np

from noisy_emcom import configs, train

GAMES = (("lg_rlss", "{d}"), ("lg_rlrl", "{d}"), ("nlg_rlrl", "{d}_0.5"))


def throughput(
    preset: str, sweep: str, batch: int, dim: int, steps: int, overrides: dict | None = None
) -> tuple[float, float, float]:
    """(init seconds, compile+first chunk seconds, steps per second of the timed chunk)."""
    cfg = configs.get_config(
        preset,
        sweep,
        {
            "batch_size": batch,
            "training_steps": 10 * steps,
            "steps_per_call": steps,
            **(overrides or {}),
        },
    )
    nets = train.make_nets(cfg)
    k_init, k_data, k_train = train.root_keys(0)
    n = max(4 * batch, 4096)
    table = jax.device_put(np.random.default_rng(0).standard_normal((n, dim), np.float32))
    tic = time.perf_counter()
    state = jax.block_until_ready(train.init_state(cfg, nets, dim, k_init))
    init = time.perf_counter() - tic
    chunk = train.make_train_chunk(cfg)
    indices = train.make_chunk_indices(batch, n, steps)
    cursor = train.start_cursor(k_data, 0, batch, n)
    tic = time.perf_counter()
    cursor, idx = indices(cursor, k_data)
    state, stats = chunk(state, table, idx, k_train)
    jax.block_until_ready(stats)
    first = time.perf_counter() - tic
    tic = time.perf_counter()
    cursor, idx = indices(cursor, k_data)
    state, stats = chunk(state, table, idx, k_train)
    jax.block_until_ready(stats)
    return init, first, steps / (time.perf_counter() - tic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 64, 256, 1024])
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    print(f"device: {jax.devices()[0].device_kind}, D = {args.dim}, {args.steps} steps per chunk")
    print(f"{'game':10s} {'B':>5s} {'compile_s':>10s} {'steps/s':>9s} {'games/s':>10s}")
    for preset, sweep in GAMES:
        for b in args.batch_sizes:
            _, first, sps = throughput(preset, sweep.format(d="imagenet"), b, args.dim, args.steps)
            print(f"{preset:10s} {b:5d} {first:10.1f} {sps:9.2f} {sps * b:10.0f}", flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
