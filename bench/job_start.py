#!/usr/bin/env python
"""Fixed cost of one pipeline job: Python + imports, parameter init, compiling the train step.

    python bench/job_start.py [--lstm 64] [--batch 16] [--steps-per-call 500] [--repeats 3]

On 2 CPU cores these costs, not the science, dominate the small configs' wall time (every job
is a fresh process). Imports: median wall time of `python -c "import M"` in a fresh process.
Per game (fast-preset sizes by default): `train.init_state` (one XLA computation at
optimisation level 0, `xla.run_once`), compiling one chunk of `--steps-per-call` updates, and
the steps/s of the compiled chunk. Numbers depend on the machine's load: run it alone.
"""

import argparse
import statistics
import subprocess
import sys
import time

import jax
import numpy as np

from noisy_emcom import configs, train

MODULES = (
    "noisy_emcom.train",
    "noisy_emcom.evaluate",
    "noisy_emcom.etl",
    "noisy_emcom.report.build",
)
GAMES = (
    ("lg_rlss", "shapes_logits"),
    ("lg_rlrl", "shapes_logits"),
    ("nlg_rlrl", "shapes_logits_0.5"),
)


def import_seconds(module: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
        times.append(time.perf_counter() - tic)
    return statistics.median(times)


def game_costs(preset: str, sweep: str, lstm: int, batch: int, per_call: int, dim: int = 48):
    """(init seconds, chunk compile seconds, steps per second)."""
    overrides = {
        "batch_size": batch,
        "steps_per_call": per_call,
        "training_steps": 100 * per_call,
        "speaker.lstm_size": lstm,
        "listener.lstm_size": lstm,
        "listener.hidden": lstm,
    }
    cfg = configs.get_config(preset, sweep, overrides)
    nets = train.make_nets(cfg)
    k_init, _, k_train = train.root_keys(0)
    table = np.random.default_rng(0).normal(size=(4096, dim)).astype(np.float32)
    tic = time.perf_counter()
    state = jax.block_until_ready(train.init_state(cfg, nets, dim, k_init))
    init_s = time.perf_counter() - tic
    indices = np.random.default_rng(1).integers(0, len(table), (per_call, batch), np.int32)
    tic = time.perf_counter()
    compiled = train.make_train_chunk(cfg).lower(state, table, indices, k_train).compile()
    compile_s = time.perf_counter() - tic
    state, _ = jax.block_until_ready(compiled(state, table, indices, k_train))
    tic = time.perf_counter()
    jax.block_until_ready(compiled(state, table, indices, k_train))
    return init_s, compile_s, per_call / (time.perf_counter() - tic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lstm", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps-per-call", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("| import | seconds |\n|---|---|")
    for module in ("jax", *MODULES):
        print(f"| `{module}` | {import_seconds(module, args.repeats):.2f} |")
    print(f"\n| game (LSTM {args.lstm}, B={args.batch}) | init s | compile s | steps/s |")
    print("|---|---|---|---|")
    for preset, sweep in GAMES:
        init_s, compile_s, rate = game_costs(
            preset, sweep, args.lstm, args.batch, args.steps_per_call
        )
        print(f"| {preset} | {init_s:.2f} | {compile_s:.2f} | {rate:.0f} |")


if __name__ == "__main__":
    main()
