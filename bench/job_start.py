#!/usr/bin/env python
"""Fixed cost of one pipeline job: Python + imports, parameter init, compiling the train step.

    python bench/job_start.py [--lstm 64] [--batch 16] [--steps-per-call 500] [--repeats 3]

On 2 CPU cores these costs, not the science, dominate the small configs' wall time (every job
is a fresh process). Imports: median wall time of `python -c "import M"` in a fresh process.
Per game (fast-preset sizes by default, `train_throughput.throughput`): `train.init_state` (one
XLA computation at optimisation level 0, `xla.run_once`), compiling and running the first chunk
of `--steps-per-call` updates, and the steps/s of the next chunk. Numbers depend on the
machine's load: run it alone.
"""

import argparse
import statistics
import subprocess
import sys
import time

from train_throughput import throughput

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lstm", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps-per-call", type=int, default=500)
    parser.add_argument("--dim", type=int, default=48, help="feature width (shapes: 48)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("| import | seconds |\n|---|---|")
    for module in ("jax", *MODULES):
        print(f"| `{module}` | {import_seconds(module, args.repeats):.2f} |")
    sizes = dict.fromkeys(("speaker.lstm_size", "listener.lstm_size", "listener.hidden"), args.lstm)
    print(f"\n| game (LSTM {args.lstm}, B={args.batch}) | init s | compile + first chunk s |"
          " steps/s |\n|---|---|---|---|")  # fmt: skip
    for preset, sweep in GAMES:
        init_s, first_s, rate = throughput(
            preset, sweep, args.batch, args.dim, args.steps_per_call, sizes
        )
        print(f"| {preset} | {init_s:.2f} | {first_s:.2f} | {rate:.0f} |")


if __name__ == "__main__":
    main()
