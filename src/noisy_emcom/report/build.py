"""The report stage end to end: read the per-run files, write every table, figure and claim.

    inputs = ReportInputs(tests=[...], measures=[...], train_logs=[...], etl=[...])
    written = build_report(inputs, "results/report")

Which outputs are written depends only on which input families are given (non-empty file
lists; for tests, which of the four tests): ``expected_outputs`` lists them, so that the
pipeline can declare them. A family whose files hold no usable rows still gets its files
(empty tables, "no data" figures). ``results.md`` assembles every paper table's Markdown and
the claims check into one page (the source of ``docs/results.md``: ``make results-page``).
Every file is written under a temporary name and renamed; ``manifest.json`` (written last)
lists every output with its size and SHA-256.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from noisy_emcom import files, language
from noisy_emcom.report import aggregate as agg
from noisy_emcom.report import claims as claims_mod
from noisy_emcom.report import figures, tables
from noisy_emcom.report import io as rio

TEST_TABLE = {
    "testchannel": "channel",
    "testinput": "input",
    "testmessage": "message",
    "testtopsim": "topsim",
}
TEST_FIGURES = {
    "testchannel": ("fig_accuracy_vs_p",),
    "testmessage": ("fig_accuracy_vs_erased",),
}
BOUND_COLUMNS = ("capacity_bits", "fano_bound", "fano_bound_tight")
# Per setting, the same for every seed: kept once, not averaged.
TEST_CONSTANTS = ("n_games", *BOUND_COLUMNS, "n_pairs_per_batch", "n_batches")
# Averaged over seeds: the metric columns of language.METRIC_COLUMNS that vary, and topsim's.
TEST_VALUES = (
    *(c for c in language.METRIC_COLUMNS if c not in TEST_CONSTANTS),
    "topsim",
    "n_nan_batches",
)
TABLE_FORMATS = ("csv", "md", "tex")
FIGURE_FORMATS = ("png", "svg")
MANIFEST = "manifest.json"
RESULTS_PAGE = "results.md"
# Sections of results.md, in order: (paper table stem, heading).
PAGE_SECTIONS = (
    ("table_channel", "Channel test"),
    ("table_message", "Message test"),
    ("table_redundancy", "Redundancy measures"),
    ("table_topsim", "Topographic similarity"),
    ("table_input", "Input test"),
    ("table_etl", "Ease of transfer learning (ETL)"),
)


@dataclasses.dataclass(frozen=True)
class ReportInputs:
    """Explicit lists of per-run files, one list per family (any may be empty)."""

    tests: Sequence[str | Path] = ()
    measures: Sequence[str | Path] = ()
    train_logs: Sequence[str | Path] = ()
    etl: Sequence[str | Path] = ()
    etl_curves: Sequence[str | Path] = ()


@dataclasses.dataclass(frozen=True)
class ReportOptions:
    decoding: str = "sample"  # decoding of the paper tables, figures and claims
    alpha: float = claims_mod.ALPHA  # level of the claims' tests over seeds
    margin: float = claims_mod.MARGIN  # equivalence / non-inferiority margin (accuracy units)

    @property
    def rule(self) -> claims_mod.Rule:
        return claims_mod.Rule(self.alpha, self.margin)


def _table_files(stem: str) -> list[str]:
    return [f"tables/{stem}.{ext}" for ext in TABLE_FORMATS]


def _figure_files(stem: str) -> list[str]:
    return [f"figures/{stem}.{ext}" for ext in FIGURE_FORMATS]


def _data_files(stem: str) -> list[str]:
    return [f"tables/{stem}.csv", f"tables/{stem}.parquet"]


def expected_outputs(
    tests: Sequence[str] = (),
    measures: bool = False,
    train_logs: bool = False,
    etl: bool = False,
    etl_curves: bool = False,
) -> list[str]:
    """Paths (relative to the output directory) that ``build_report`` writes when the given
    families are present; ``tests`` names the tests present (``testchannel``, …)."""
    out: list[str] = []
    for test in rio.TESTS:
        if test not in tests:
            continue
        out += _data_files(test) + _data_files(f"{test}_agg")
        out += _table_files(tables.PAPER_TABLES[TEST_TABLE[test]].name)
        for fig in TEST_FIGURES.get(test, ()):
            out += _figure_files(fig)
    if measures:
        out += _data_files("measures") + _data_files("measures_agg")
        out += _table_files(tables.PAPER_TABLES["redundancy"].name)
        out += _figure_files("fig_erasure_sensitivity")
    if train_logs:
        out += _data_files("train_logs") + _data_files("train_logs_agg")
        out += _figure_files("fig_learning_curves")
    if etl:
        out += _data_files("etl") + _data_files("etl_agg")
        out += _table_files(tables.PAPER_TABLES["etl"].name)
        out += _figure_files("fig_etl")
    if etl_curves:
        out += _data_files("etl_curves") + _data_files("etl_curves_agg")
    out += ["tables/claims.csv", "tables/claims.md", RESULTS_PAGE, MANIFEST]
    return out


class _Writer:
    """Atomic writes under ``out_dir``, remembering what was written."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.written: list[Path] = []
        # Temporary files of a build that was killed (e.g. a cancelled SLURM job).
        for stale in out_dir.rglob(".*.tmp") if out_dir.is_dir() else []:
            stale.unlink()
        self.markdown: dict[str, str] = {}  # paper table stem → its Markdown

    def _path(self, rel: str) -> Path:
        return self.out_dir / rel

    def text(self, rel: str, text: str) -> None:
        self.written.append(files.atomic_write_text(self._path(rel), text))

    def frame(self, stem: str, df: pd.DataFrame) -> None:
        """tables/<stem>.parquet then tables/<stem>.csv."""
        pq, csv = self._path(f"tables/{stem}.parquet"), self._path(f"tables/{stem}.csv")
        frame = df.reset_index(drop=True)
        self.written.append(files.atomic_write(pq, lambda p: frame.to_parquet(p, index=False)))
        self.written.append(files.atomic_write(csv, lambda p: frame.to_csv(p, index=False)))

    def paper_table(self, table: tables.PaperTable) -> None:
        stem = table.spec.name
        csv = self._path(f"tables/{stem}.csv")
        self.written.append(files.atomic_write(csv, lambda p: table.wide.to_csv(p, index=False)))
        self.markdown[stem] = tables.to_markdown(table)
        self.text(f"tables/{stem}.md", self.markdown[stem])
        self.text(f"tables/{stem}.tex", tables.to_latex(table))

    def figure(self, stem: str, fig) -> None:
        try:
            for ext in FIGURE_FORMATS:
                path = self._path(f"figures/{stem}.{ext}")
                self.written.append(
                    files.atomic_write(
                        path,
                        lambda p, e=ext: fig.savefig(p, format=e, dpi=110, bbox_inches="tight"),
                    )
                )
        finally:
            plt.close(fig)

    def manifest(self, extra: dict) -> Path:
        entries = [
            {
                "path": str(p.relative_to(self.out_dir)),
                "bytes": p.stat().st_size,
                "sha256": rio.file_digest(p),
            }
            for p in self.written
        ]
        body = json.dumps({**extra, "outputs": entries}, indent=1, sort_keys=True) + "\n"
        path = files.atomic_write_text(self._path(MANIFEST), body)
        self.written.append(path)
        return path


def _demote_headings(markdown: str) -> str:
    """One more ``#`` on every ATX heading, so a page's ``# title`` nests under ``##``."""
    return "\n".join("#" + line if line.startswith("#") else line for line in markdown.split("\n"))


def results_page(
    markdown: dict[str, str], claims_md: str, options: ReportOptions, rows: dict[str, int]
) -> str:
    """The Markdown page ``results.md``: a short header, each paper table present (in the
    order of ``PAGE_SECTIONS``) under its own heading, then the claims check."""
    counts = ", ".join(f"{name} {n}" for name, n in rows.items()) or "none"
    lines = [
        "# Results",
        "",
        "Assembled by the report stage from `tables/*.md` and `tables/claims.md` of the same "
        f"folder. Cells are mean ± std over training seeds; speaker decoding `{options.decoding}`; "
        f"claims at alpha {options.alpha:g} with margin {options.margin:g}. Rows read: {counts}.",
        "",
    ]
    for stem, heading in PAGE_SECTIONS:
        if stem in markdown:
            lines += [f"## {heading}", "", markdown[stem].rstrip(), ""]
    lines += [_demote_headings(claims_md).rstrip(), ""]
    return "\n".join(lines)


def _curve_values(df: pd.DataFrame) -> list[str]:
    keys = {*rio.RUN_COLUMNS, *rio.ETL_KEY_COLUMNS, "step", "checkpoint_step"}
    return [c for c in df.columns if c not in keys and pd.api.types.is_numeric_dtype(df[c])]


def load_inputs(inputs: ReportInputs) -> dict[str, pd.DataFrame]:
    """Concatenated tables keyed by family (tests by test name); absent families omitted."""
    out: dict[str, pd.DataFrame] = {}
    if inputs.tests:
        out.update(rio.read_tests(inputs.tests))
    if inputs.measures:
        out["measures"] = rio.read_measures(inputs.measures)
    if inputs.train_logs:
        out["train_logs"] = rio.read_train_logs(inputs.train_logs)
    if inputs.etl:
        out["etl"] = rio.read_etl_results(inputs.etl)
    if inputs.etl_curves:
        out["etl_curves"] = rio.read_etl_curves(inputs.etl_curves)
    return out


def build_report(
    inputs: ReportInputs, out_dir: str | Path, options: ReportOptions | None = None
) -> list[Path]:
    """Write every output of the present families under ``out_dir``; returns their paths
    (``manifest.json`` last). Every input is read and checked first: a ReportInputError
    leaves ``out_dir`` untouched."""
    options = options or ReportOptions()
    out_dir = Path(out_dir)
    data = load_inputs(inputs)
    w = _Writer(out_dir)

    for test in rio.TESTS:
        if test not in data:
            continue
        df = data[test]
        w.frame(test, df)
        w.frame(f"{test}_agg", agg.aggregate_over_seeds(df, TEST_VALUES, TEST_CONSTANTS))
        w.paper_table(tables.build(TEST_TABLE[test], df, options.decoding))
    if "testchannel" in data:
        w.figure("fig_accuracy_vs_p", figures.accuracy_vs_p(data["testchannel"], options.decoding))
    if "testmessage" in data:
        w.figure(
            "fig_accuracy_vs_erased",
            figures.accuracy_vs_erased(data["testmessage"], options.decoding),
        )
    if "measures" in data:
        df = data["measures"]
        w.frame("measures", df)
        w.frame("measures_agg", agg.aggregate_over_seeds(df, ["value"], BOUND_COLUMNS))
        w.paper_table(tables.build("redundancy", df, options.decoding))
        w.figure("fig_erasure_sensitivity", figures.erasure_sensitivity(df, options.decoding))
    if "train_logs" in data:
        df = data["train_logs"]
        w.frame("train_logs", df)
        values = [c for c in df.columns if c not in (*rio.RUN_COLUMNS, "step")]
        w.frame("train_logs_agg", agg.aggregate_over_seeds(df, values))
        w.figure("fig_learning_curves", figures.learning_curves(df))
    if "etl" in data:
        df = data["etl"]
        w.frame("etl", df)
        w.frame("etl_agg", agg.aggregate_over_seeds(df, ["value"]))
        w.paper_table(tables.build("etl", df, options.decoding))
        w.figure("fig_etl", figures.etl_bars(df))
    if "etl_curves" in data:
        df = data["etl_curves"]
        w.frame("etl_curves", df)
        w.frame("etl_curves_agg", agg.aggregate_over_seeds(df, _curve_values(df)))

    results = claims_mod.evaluate_claims(data, options.decoding, options.rule)
    frame = claims_mod.to_frame(results)
    w.written.append(
        files.atomic_write(out_dir / "tables/claims.csv", lambda p: frame.to_csv(p, index=False))
    )
    claims_md = claims_mod.to_markdown(results, options.decoding, options.rule)
    w.text("tables/claims.md", claims_md)
    rows = {name: int(len(df)) for name, df in data.items()}
    w.text(RESULTS_PAGE, results_page(w.markdown, claims_md, options, rows))

    families = {
        "tests": [t for t in rio.TESTS if t in data],
        "measures": "measures" in data,
        "train_logs": "train_logs" in data,
        "etl": "etl" in data,
        "etl_curves": "etl_curves" in data,
    }
    expected = set(expected_outputs(**families))
    got = {str(p.relative_to(out_dir)) for p in w.written} | {MANIFEST}
    if expected != got:  # a programming error, never a data error
        raise RuntimeError(
            f"report outputs differ from expected_outputs: missing {sorted(expected - got)}, "
            f"extra {sorted(got - expected)}"
        )
    w.manifest(
        {
            "families": families,
            "options": dataclasses.asdict(options),
            "inputs": {
                f.name: [str(p) for p in getattr(inputs, f.name)]
                for f in dataclasses.fields(inputs)
            },
            "rows": rows,
        }
    )
    return w.written
