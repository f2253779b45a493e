"""Paper-style tables: rows = model × setting, columns = K (or ETL noise, or measure), cells
"mean ± std" over training seeds; each written as CSV, Markdown and LaTeX.

Every table keeps ``dataset`` and ``train_batch_size`` as its leading row levels, then any
other identifying column that takes more than one value in the data (so that distinct
settings are never pooled silently), then its own layout. Markdown and LaTeX drop a leading
level that has a single value and state it in the caption line instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import pandas as pd

from noisy_emcom.language import IDENTIFYING_COLUMNS
from noisy_emcom.report import aggregate as agg
from noisy_emcom.report.io import ETL_KEY_COLUMNS, MEASURE_KEY_COLUMNS, TOPSIM_KEY_COLUMNS

HEADERS = {
    "dataset": "dataset",
    "train_batch_size": "B",
    "model": "game",
    "channel": "channel",
    "channel_p": "p",
    "eval_batch_size": "K",
    "n_masked": "erased positions",
    "listener_view": "listener view",
    "input_noise": "c",
    "meaning": "meaning",
    "task": "task",
    "etl_dataset": "ETL dataset",
    "metric": "metric",
    "etl_noise": "ETL noise",
    "checkpoint_step": "checkpoint",
    "unknown_token_policy": "unknown token",
    "decoding": "decoding",
}
CHANNEL_ORDER = {"identity": 0, "erasure": 1, "substitution": 2, "fixed_erasure": 3}
VIEW_ORDER = {"same": 0, "independent": 1}
REDUNDANCY_MEASURES = {
    "redundancy": "R_K",
    "effective_positions": "N_eff",
    "mean_position_entropy": "mean token entropy (bits)",
    "unique_message_ratio": "unique ratio",
}
ETL_MAIN_METRICS = (
    "accuracy",
    "baseline_accuracy",  # what an answer that ignores the message scores (docs/etl.md)
    "rank5_accuracy",
    "baseline_rank5_accuracy",
    "loss",
    "mse",
    "baseline_mse",
    "psnr",
    "baseline_psnr",
)
_EXTRA_CANDIDATES = tuple(
    dict.fromkeys(
        [*IDENTIFYING_COLUMNS, *TOPSIM_KEY_COLUMNS, *MEASURE_KEY_COLUMNS, *ETL_KEY_COLUMNS]
    )
)
_NEVER_LEVELS = {"run_id", "seed", "game", "train_noise", "model"}


@dataclasses.dataclass(frozen=True)
class TableSpec:
    """Layout of one paper table."""

    name: str  # output stem, e.g. "table_channel"
    title: str
    value: str  # column holding the value of a cell
    rows: tuple[str, ...]  # layout row levels after the configuration levels
    column: str  # column spread over the table's columns
    pooled: tuple[str, ...]  # columns averaged within a run before the seed statistics
    column_label: Callable[[object], str] = lambda v: f"K={agg.format_number(v)}"
    column_order: tuple | None = None  # explicit order of column values (else sorted)
    digits: int = 3


@dataclasses.dataclass
class PaperTable:
    spec: TableSpec
    wide: pd.DataFrame  # CSV layout: raw level names, one column per column value, then n
    stats: pd.DataFrame  # long: levels, column value, n, mean, std
    levels: list[str]
    notes: list[str]


PAPER_TABLES = {
    "channel": TableSpec(
        "table_channel",
        "Channel test: accuracy (mean ± std over seeds) by candidates K",
        "accuracy",
        ("model", "channel", "channel_p"),
        "eval_batch_size",
        ("repetition",),
    ),
    "input": TableSpec(
        "table_input",
        "Input test: accuracy under input noise (mean ± std over seeds) by candidates K",
        "accuracy",
        ("model", "input_noise", "listener_view", "channel", "channel_p"),
        "eval_batch_size",
        ("repetition",),
    ),
    "message": TableSpec(
        "table_message",
        "Message test: accuracy (mean over erased subsets; mean ± std over seeds) by K",
        "accuracy",
        ("model", "n_masked"),
        "eval_batch_size",
        ("repetition", "masked_positions", "subset_index"),
    ),
    "topsim": TableSpec(
        "table_topsim",
        "Topographic similarity of post-channel messages (mean ± std over seeds) by K",
        "topsim",
        ("meaning", "model", "channel", "channel_p"),
        "eval_batch_size",
        ("repetition",),
    ),
    "etl": TableSpec(
        "table_etl",
        "Ease of transfer learning: test metrics (mean ± std over speaker seeds) by ETL noise",
        "value",
        ("task", "etl_dataset", "metric", "model"),
        "etl_noise",
        ("etl_seed", "etl_steps", "repetition"),
        column_label=lambda v: f"noise={agg.format_number(v)}",
    ),
    "redundancy": TableSpec(
        "table_redundancy",
        "Redundancy measures of clean messages (mean ± std over seeds)",
        "value",
        ("model", "eval_batch_size"),
        "measure",
        (
            "test",
            "channel",
            "channel_p",
            "n_masked",
            "masked_positions",
            "subset_index",
            "input_noise",
            "listener_view",
            "meaning",
            "message_stage",
            "position",
            "repetition",
        ),
        column_label=lambda v: REDUNDANCY_MEASURES.get(str(v), str(v)),
        column_order=tuple(REDUNDANCY_MEASURES),
    ),
}


# --------------------------------------------------------------------------------------------
# Selection of the rows each table uses
# --------------------------------------------------------------------------------------------


def _eq(df: pd.DataFrame, column: str, value: object) -> pd.DataFrame:
    if df.empty or column not in df.columns:
        return df
    return df[df[column].astype("string") == str(value)]


def select(kind: str, df: pd.DataFrame, decoding: str = "sample") -> pd.DataFrame:
    """Rows of a concatenated table that feed the paper table ``kind``."""
    if df.empty:
        return df
    if kind in ("channel", "input", "message", "topsim", "redundancy"):
        df = _eq(df, "decoding", decoding)
    if kind == "topsim":
        df = _eq(df, "message_stage", "post_channel")
    if kind == "redundancy":
        df = df[df["measure"].astype("string").isin(list(REDUNDANCY_MEASURES))]
    if kind == "etl":
        df = df[df["metric"].astype("string").isin(list(ETL_MAIN_METRICS))]
    return df


def config_levels(df: pd.DataFrame, spec: TableSpec) -> list[str]:
    """Leading row levels: dataset, train_batch_size, then the varying identifying columns
    that are neither in the layout nor pooled."""
    skip = _NEVER_LEVELS | set(spec.rows) | {spec.column} | set(spec.pooled)
    skip |= set(agg.CONFIG_BASE)
    extras = agg.varying_columns(df, [c for c in _EXTRA_CANDIDATES if c not in skip])
    return [c for c in agg.CONFIG_BASE if c in df.columns] + extras


def _sort_frame(df: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    def key(s: pd.Series) -> pd.Series:
        if s.name == "channel":
            return s.astype("string").map(lambda v: CHANNEL_ORDER.get(v, 9) if pd.notna(v) else 9)
        if s.name == "listener_view":
            return s.astype("string").map(lambda v: VIEW_ORDER.get(v, 9) if pd.notna(v) else 9)
        return s

    return df.sort_values(list(by), key=key, na_position="last", kind="stable")


def build(kind: str, df: pd.DataFrame, decoding: str = "sample") -> PaperTable:
    """The paper table ``kind`` (a key of ``PAPER_TABLES``) from a concatenated table."""
    spec = PAPER_TABLES[kind]
    data = select(kind, df, decoding)
    notes = []
    if kind not in ("etl",):
        notes.append(f"decoding = {decoding}")
    if data.empty:
        levels = [*agg.CONFIG_BASE, *spec.rows]
        wide = pd.DataFrame(columns=[*levels, "n"])
        stats = pd.DataFrame(columns=[*levels, spec.column, "n", "mean", "std"])
        return PaperTable(spec, wide, stats, levels, [*notes, "no data"])
    data = agg.add_model(data)
    levels = [*config_levels(data, spec), *spec.rows]
    keys = [*levels, spec.column]
    runs = agg.run_level(data, keys, spec.value)
    stats = agg.seed_stats(runs, keys, [spec.value])
    stats = stats.rename(columns={f"{spec.value}_mean": "mean", f"{spec.value}_std": "std"})
    stats = _sort_frame(stats, keys).reset_index(drop=True)

    col_values = list(dict.fromkeys(stats[spec.column].tolist()))
    if spec.column_order is not None:
        col_values = [v for v in spec.column_order if v in col_values] + [
            v for v in col_values if v not in spec.column_order
        ]
    else:
        col_values = sorted(col_values, key=lambda v: (pd.isna(v), v if pd.notna(v) else 0))
    rows: dict[tuple, dict] = {}
    for rec in stats.to_dict("records"):
        rk = tuple(rec[c] for c in levels)
        row = rows.setdefault(rk, {**{c: agg.format_number(rec[c]) for c in levels}, "_n": []})
        row[spec.column_label(rec[spec.column])] = agg.format_cell(
            rec["mean"], rec["std"], spec.digits
        )
        row["_n"].append(int(rec["n"]))
    labels = [spec.column_label(v) for v in col_values]
    records = []
    for row in rows.values():
        n = row.pop("_n")
        records.append({**row, **{lab: row.get(lab, "") for lab in labels}, "n": min(n)})
    wide = pd.DataFrame(records, columns=[*levels, *labels, "n"])
    return PaperTable(spec, wide, stats, levels, notes)


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _display(table: PaperTable) -> tuple[pd.DataFrame, list[str]]:
    """Table for Markdown/LaTeX: single-valued configuration levels moved to the notes,
    readable headers."""
    wide = table.wide.copy()
    notes = list(table.notes)
    for c in agg.CONFIG_BASE:
        if c in wide.columns and len(wide) and wide[c].nunique() == 1:
            notes.insert(0, f"{HEADERS.get(c, c)} = {wide[c].iloc[0]}")
            wide = wide.drop(columns=c)
    wide = wide.rename(columns={c: HEADERS.get(c, c) for c in table.levels})
    if "n" in wide.columns:
        wide = wide.rename(columns={"n": "seeds"})
    return wide, notes


def to_markdown(table: PaperTable) -> str:
    wide, notes = _display(table)
    lines = [f"**{table.spec.title}.**", ""]
    if notes:
        lines += ["; ".join(notes) + ".", ""]
    if wide.empty:
        lines.append("_No data._")
    else:
        lines.append(wide.to_markdown(index=False, disable_numparse=True))
    return "\n".join(lines) + "\n"


_LATEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: object) -> str:
    out = "".join(_LATEX_ESCAPES.get(ch, ch) for ch in str(text))
    return out.replace("±", r"$\pm$")


def to_latex(table: PaperTable) -> str:
    wide, notes = _display(table)
    caption = table.spec.title + (" (" + "; ".join(notes) + ")" if notes else "")
    n_levels = len([c for c in table.levels if HEADERS.get(c, c) in wide.columns])
    align = "l" * n_levels + "r" * (len(wide.columns) - n_levels)
    lines = [
        r"\begin{table}[ht]",
        r"\centering",
        r"\caption{" + latex_escape(caption) + "}",
        r"\label{tab:" + table.spec.name.replace("_", "-") + "}",
        r"\begin{tabular}{" + (align or "l") + "}",
        r"\toprule",
        " & ".join(latex_escape(c) for c in wide.columns) + r" \\",
        r"\midrule",
    ]
    for rec in wide.itertuples(index=False):
        lines.append(" & ".join(latex_escape(v) for v in rec) + r" \\")
    if wide.empty:
        lines.append(r"\multicolumn{" + str(max(len(wide.columns), 1)) + r"}{c}{no data} \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


__all__ = ["PAPER_TABLES", "TableSpec", "PaperTable", "select", "build", "to_markdown", "to_latex"]
