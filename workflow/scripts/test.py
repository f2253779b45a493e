#!/usr/bin/env python
"""Run one test (SPEC §7) or the measures (§9) of one trained model; write one table.

    RUN=results/runs/<run_id>
    python workflow/scripts/test.py --mode channel --checkpoint $RUN/final.ckpt \
        --dataset shapes_logits --data-dir results/tfds --out $RUN/tests/testchannel.csv \
        [--message-results $RUN/tests/testmessage.csv] [--config.eval.epochs=1 ...]

--mode: channel | message | input | topsim | measures. Writes --out (CSV) and the Parquet file
beside it (same stem), each under a temporary name then renamed. --dataset is a sweep name, a
.npz/.npy file (arrays `test`, `test_attributes`) or `debug` (the generated table of the debug
preset; its test split is rows 4096..5119 of the same generator). `--config.eval.*` overrides
the evaluation protocol saved in the checkpoint's config. `measures` reads the message-test
table of the same model from --message-results, or runs the message test itself without it.
"""

import argparse
import sys
from pathlib import Path

from noisy_emcom import evaluate


def split_overrides(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """`--config.eval.x=y` (or `--config.eval.x y`) → ({"eval.x": "y"}, remaining args)."""
    overrides, rest = {}, []
    args = iter(argv)
    for arg in args:
        if arg.startswith("--config."):
            key, eq, value = arg[len("--config.") :].partition("=")
            overrides[key] = value if eq else next(args)
        else:
            rest.append(arg)
    return overrides, rest


def main(argv: list[str]) -> int:
    overrides, rest = split_overrides(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", required=True, choices=evaluate.MODES)
    parser.add_argument("--checkpoint", required=True, help="training checkpoint (.ckpt)")
    parser.add_argument("--dataset", default="", help="test dataset (default: the model's)")
    parser.add_argument("--data-dir", default="", help="TFDS data directory")
    parser.add_argument("--out", required=True, help="output CSV; the Parquet goes beside it")
    parser.add_argument(
        "--message-results", default="", help="testmessage table of this model (measures only)"
    )
    args = parser.parse_args(rest)

    model = evaluate.restore_model(args.checkpoint, overrides)
    dataset = args.dataset or model.cfg.dataset.name
    data_dir = args.data_dir or model.cfg.dataset.data_dir
    data = evaluate.load_eval_data(dataset, data_dir)
    message_rows = None
    if args.mode == "measures" and args.message_results:
        message_rows = evaluate.read_table(args.message_results)
    table = evaluate.run_test(args.mode, model, data, message_rows)
    csv, parquet = evaluate.write_table(table, Path(args.out))
    print(f"{args.mode}: {len(table)} rows → {csv} (+ {parquet.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
