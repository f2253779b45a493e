#!/usr/bin/env python
"""Run the tests and the measures (docs/tests.md) of one trained model; write one table each.

    RUN=results/runs/<run_id>
    python workflow/scripts/test.py --mode channel --checkpoint $RUN/final.ckpt \
        --dataset shapes_logits --data-dir results/tfds --out $RUN/tests/testchannel.csv \
        [--message-results $RUN/tests/testmessage.csv] [--config.eval.epochs=1 ...]
    python workflow/scripts/test.py --checkpoint $RUN/final.ckpt --data-dir results/tfds \
        --mode message --out $RUN/tests/testmessage.csv --mode measures --out $RUN/measures.csv

--mode: channel | message | input | topsim | measures, repeated with one --out each: the
model, the test split and the compiled evaluation functions are then shared by all of them
(measures run last and use the message table written before them). Each --out (CSV) gets the
Parquet file beside it (same stem), each under a temporary name then renamed. --dataset is a
sweep name, a user dataset built under --data-dir, a .npz/.npy file (arrays `test`,
`test_attributes`) or `debug` (the generated table of the debug preset; its test split is rows
4096..5119 of the same generator). Without it the model's own dataset is tested (the name or
table file in its config); a dataset of another feature width is refused, naming both.
`--config.eval.*` overrides the evaluation protocol saved in the checkpoint's config. `measures`
reads the message-test table of the same model (from --message-results or from this call's
message test), or runs the message test itself without it.
"""

import argparse
import sys
from pathlib import Path

from noisy_emcom import checkpoint, configs, evaluate
from noisy_emcom.data import registry
from noisy_emcom.data.errors import DataError
from noisy_emcom.progress import setup_logging


def main(argv: list[str]) -> int:
    setup_logging()
    overrides, rest = configs.split_overrides(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--mode", required=True, action="append", choices=evaluate.MODES, help="repeatable"
    )
    parser.add_argument("--checkpoint", required=True, help="training checkpoint (.ckpt)")
    parser.add_argument("--dataset", default="", help="test dataset (default: the model's)")
    parser.add_argument("--data-dir", default="", help="TFDS data directory")
    parser.add_argument(
        "--out", required=True, action="append", help="output CSV, one per --mode, in order"
    )
    parser.add_argument(
        "--message-results", default="", help="testmessage table of this model (measures only)"
    )
    args = parser.parse_args(rest)
    if len(args.out) != len(args.mode):
        parser.error(f"give one --out per --mode: {len(args.mode)} modes, {len(args.out)} outs")
    not_csv = [out for out in args.out if Path(out).suffix != ".csv"]
    if not_csv:  # before any test runs: write_table would refuse it after the work
        parser.error(
            f"--out must end in .csv (the Parquet twin is written beside it): {not_csv[0]}"
        )

    try:
        model = evaluate.restore_model(args.checkpoint, overrides)  # overrides validated
    except configs.ConfigError as err:
        sys.exit(f"error: {err}")
    except checkpoint.CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    trained = model.cfg.dataset.get("file") or model.cfg.dataset.name
    dataset = args.dataset or trained
    data_dir = args.data_dir or model.cfg.dataset.data_dir
    try:
        registry.discover(data_dir)
        data = evaluate.load_eval_data(dataset, data_dir)
        evaluate.check_width(model, data, trained)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    tables = {}
    if args.message_results:
        tables["message"] = evaluate.read_table(args.message_results)
    for mode, out in sorted(
        zip(args.mode, args.out, strict=True), key=lambda j: j[0] == "measures"
    ):
        tables[mode] = evaluate.run_test(mode, model, data, tables.get("message"))
        csv, parquet = evaluate.write_table(tables[mode], Path(out))
        print(f"{mode}: {len(tables[mode])} rows → {csv} (+ {parquet.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
