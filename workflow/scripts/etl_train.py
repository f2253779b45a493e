#!/usr/bin/env python
"""Train one ETL listener (docs/etl.md) on the frozen language of a trained speaker (and test it).

    RUN=results/runs/lg_rl-shapes_logits-b1024-p0.0-s0
    python workflow/scripts/etl_train.py --checkpoint $RUN/final.ckpt \
        --config=etl:shapes_noimg_attribute_0.0 [--config.etl.training_steps=2000 ...] \
        --data-dir results/tfds --out-dir $RUN/etl/attribute-shapes_noimg-p0.0-sample \
        [--results $RUN/etl/attribute-shapes_noimg-p0.0-sample/results.csv]

The sweep is `<dataset>_<task>_<noise>`; `--dataset NAME` replaces its dataset (a built-in or
a user dataset built under --data-dir; a features table of another width than the speaker's is
refused, naming both) (tasks: discrimination, discriminationdist,
classification, attribute, reconstruction). Writes <out-dir>/listener.ckpt (final),
<out-dir>/curve.csv (loss and metrics per etl.log_every steps) and periodic checkpoints under
<out-dir>/checkpoints/, each under a temporary name then renamed. Rerunning with the same
--out-dir resumes; a finished run is not trained again. Exit status 143 after SIGTERM (a
checkpoint was written; rerun to resume). With --results (and --png for reconstruction), the
finished listener is tested in the same process, as `etl_test.py` would.
"""

import argparse
import sys
from pathlib import Path

from noisy_emcom import checkpoint, configs, etl, lifeline
from noisy_emcom.data import registry
from noisy_emcom.data.errors import DataError
from noisy_emcom.progress import setup_logging


def main(argv: list[str]) -> int:
    setup_logging()
    overrides, rest = configs.split_overrides(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--config", required=True, metavar="etl:SWEEP", help="etl:<dataset>_<task>_<noise>, "
        "e.g. etl:shapes_noimg_attribute_0.0; --config.<field>=<value> overrides any field",
    )  # fmt: skip
    parser.add_argument("--checkpoint", required=True, help="speaker's training checkpoint")
    parser.add_argument("--dataset", default="", help="dataset name (replaces the sweep's)")
    parser.add_argument("--data-dir", default="", help="TFDS data directory")
    parser.add_argument("--out-dir", required=True, help="output folder of this ETL run")
    parser.add_argument("--results", default="", help="test the listener: result CSV")
    parser.add_argument("--png", default="", help="with --results: reconstruction grid PNG")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(rest)
    try:
        registry.discover(args.data_dir)
        spec = configs.with_dataset(args.config, args.dataset) if args.dataset else args.config
        cfg = configs.from_spec(spec, overrides)  # resolved and validated
    except (configs.ConfigError, DataError) as err:
        sys.exit(f"error: {err}")
    if cfg.get("experiment") != "etl":
        parser.error(
            "--config must name the etl preset, e.g. --config=etl:shapes_noimg_attribute_0.0"
        )
    if args.results and Path(args.results).suffix != ".csv":
        parser.error(f"--results must end in .csv: {args.results}")
    if not args.out_dir.strip():
        parser.error("--out-dir is empty; give a folder for this ETL run's outputs")
    if Path(args.out_dir).exists() and not Path(args.out_dir).is_dir():
        parser.error(f"--out-dir {args.out_dir} is a file; give a folder for this ETL run")
    if args.data_dir:
        cfg.dataset.data_dir = args.data_dir
    lifeline.watch_snakemake()  # stop (with a checkpoint) if Snakemake is killed
    try:
        speaker = etl.load_speaker(args.checkpoint)
        data_dir = cfg.dataset.data_dir or None
        result = etl.train_etl(cfg, speaker, data_dir, args.out_dir, progress=not args.no_progress)
        if not result.finished:
            print(f"interrupted at step {int(result.state.step)}; rerun to resume", file=sys.stderr)
            return 143
        print(f"{cfg.etl.task}: {int(result.state.step)} steps → {result.listener_path}")
        if args.results:
            rows = etl.run_test(speaker, result.listener_path, data_dir, png=args.png or None)
            etl.write_results(rows, args.results)
            print(f"{cfg.etl.task}: {len(rows)} rows → {args.results}")
    # ValueError: settings that do not fit the data or the run folder's earlier config.
    except (DataError, checkpoint.CheckpointError, FloatingPointError, OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
