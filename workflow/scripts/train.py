#!/usr/bin/env python
"""Train one game on one dataset.

    python workflow/scripts/train.py --config=lg_rlrl:shapes_logits --config.batch_size=64 \
        --data-dir results/tfds --run-dir results/runs/lg_rl-shapes_logits-b64-p0.0-s0

    python workflow/scripts/train.py --config=nlg_rlrl:debug_0.5 --dataset table.npz \
        --run-dir results/runs/nlg-table-b32-p0.5-s0
    python workflow/scripts/train.py --config=lg_rlrl:shapes_logits --dataset mydata \
        --data-dir results/tfds --run-dir results/runs/lg_rl-mydata-b32-p0.0-s0

Writes <run-dir>/config.json, train_log.csv, checkpoints/step_*.ckpt and final.ckpt; rerunning
with the same --run-dir resumes. SIGTERM (or the death of the Snakemake process that started
it) writes a checkpoint and exits with status 143. `--dataset` replaces the sweep's dataset:
a name (built-in, or a user dataset built under --data-dir) or a .npy table [N,D] / .npz with a
`train` (or `train_logit`) array of real numbers, all finite (`--features` is the same). A
user dataset or a table gets the user defaults (docs/config.md#your-own-data) and its name
(a table: its stem) in the run id; the model's config keeps the name, the file and its SHA-256.
The `debug` dataset is a generated table (64 Gaussian clusters, D=32).
"""

import argparse
import sys
from pathlib import Path

from noisy_emcom import checkpoint, configs, lifeline, synthetic, train
from noisy_emcom.data import own
from noisy_emcom.data.errors import DataError
from noisy_emcom.progress import setup_logging


def main(argv: list[str]) -> int:
    setup_logging()
    overrides, rest = configs.split_overrides(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, metavar="PRESET:SWEEP", help=configs.CONFIG_HELP)
    parser.add_argument("--run-dir", required=True, help="output folder of this run")
    parser.add_argument("--data-dir", default="", help="TFDS data directory")
    parser.add_argument(
        "--dataset", "--features", default="", help="dataset name or .npy/.npz table"
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(rest)
    try:
        cfg = own.train_config(args.config, overrides, args.dataset, args.data_dir)
    except configs.ConfigError as err:
        sys.exit(f"error: {err}")
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if not args.run_dir.strip():
        parser.error("--run-dir is empty; give a folder for this run's outputs")
    if Path(args.run_dir).exists() and not Path(args.run_dir).is_dir():
        parser.error(f"--run-dir {args.run_dir} is a file; give a folder for this run's outputs")
    lifeline.watch_snakemake()  # stop (with a checkpoint) if Snakemake is killed
    try:
        return run(cfg, args)
    # ValueError: settings that do not fit the data or the run folder's earlier config.
    except (DataError, checkpoint.CheckpointError, FloatingPointError, OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def run(cfg, args) -> int:
    if cfg.dataset.file:
        from noisy_emcom.data import loader

        table = loader.load_split(cfg.dataset.file, "train", "", ("logit",))["logit"]
    elif cfg.dataset.name == "debug":
        table, _ = synthetic.clustered_features(4096, dim=32, n_clusters=64, seed=0)
    else:
        from noisy_emcom.data import loader

        data_dir = args.data_dir or cfg.dataset.data_dir
        table = loader.load_split(cfg.dataset.name, "train", data_dir, ("logit",))["logit"]
    result = train.train(cfg, table, args.run_dir, progress=not args.no_progress)
    if result.resumed_from:
        print(f"resumed from step {result.resumed_from}", file=sys.stderr)
    if not result.finished:
        print(f"interrupted at step {int(result.state.step)}; rerun to resume", file=sys.stderr)
        return 143
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
