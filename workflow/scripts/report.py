#!/usr/bin/env python
"""Build the report (tables, figures, claims check) from explicit lists of per-run files.

    python workflow/scripts/report.py --out-dir results/report \
        --tests results/runs/*/tests/test{channel,message,input,topsim}.csv \
        --measures results/runs/*/measures.csv \
        --train-logs results/runs/*/train_log.csv \
        --etl results/runs/*/etl/*/results.csv --etl-curves results/runs/*/etl/*/curve.csv \
        [--decoding sample] [--alpha 0.05] [--margin 0.05] [--list-outputs]

Every family is optional; the outputs written depend only on which families (and which of
the four tests) are given — ``--list-outputs`` prints them without reading anything. Each
output is written under a temporary name then renamed; ``<out-dir>/manifest.json`` (last)
lists them with sizes and SHA-256. Nothing is globbed here: the pipeline passes every path.
"""

import argparse
import math
import sys
from pathlib import Path

from noisy_emcom import report
from noisy_emcom.report import io as rio


def _bounded(lo: float, hi: float, what: str, closed: bool = False):
    """argparse type: a finite float in (lo, hi), or [lo, hi) when `closed`."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        inside = (lo <= value if closed else lo < value) and value < hi
        if not (math.isfinite(value) and inside):
            raise argparse.ArgumentTypeError(f"{text!r}: expected {what}")
        return value

    return parse


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out-dir", required=True, help="output directory of the report")
    parser.add_argument("--tests", nargs="*", default=[], metavar="FILE", help="tests/<test>.csv")
    parser.add_argument("--measures", nargs="*", default=[], metavar="FILE", help="measures.csv")
    parser.add_argument("--train-logs", nargs="*", default=[], metavar="FILE", help="train_log.csv")
    parser.add_argument("--etl", nargs="*", default=[], metavar="FILE", help="etl/*/results.csv")
    parser.add_argument(
        "--etl-curves", nargs="*", default=[], metavar="FILE", help="etl/*/curve.csv"
    )
    parser.add_argument("--decoding", default="sample", choices=("sample", "greedy"))
    parser.add_argument(
        "--alpha",
        type=_bounded(0.0, 1.0, "a level strictly between 0 and 1"),
        default=0.05,
        help="claims: level of the tests over seeds",
    )
    parser.add_argument(
        "--margin",
        type=_bounded(0.0, math.inf, "a margin of at least 0", closed=True),
        default=0.05,
        help="claims: equivalence / non-inferiority margin (accuracy units)",
    )
    parser.add_argument(
        "--list-outputs",
        action="store_true",
        help="print the output paths for the given families (tests by file stem) and exit",
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    out_dir = Path(args.out_dir)
    if args.list_outputs:
        tests = sorted({Path(p).stem for p in args.tests} & set(rio.TESTS))
        for rel in report.expected_outputs(
            tests,
            bool(args.measures),
            bool(args.train_logs),
            bool(args.etl),
            bool(args.etl_curves),
        ):
            print(out_dir / rel)
        return 0
    inputs = report.ReportInputs(
        tests=args.tests,
        measures=args.measures,
        train_logs=args.train_logs,
        etl=args.etl,
        etl_curves=args.etl_curves,
    )
    options = report.ReportOptions(decoding=args.decoding, alpha=args.alpha, margin=args.margin)
    try:
        written = report.build_report(inputs, out_dir, options)
    except report.ReportInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"report: {len(written)} files → {out_dir} (manifest {written[-1].name})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
