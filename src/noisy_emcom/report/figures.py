"""Figures of the report (matplotlib Agg backend, seaborn), each saved as PNG and SVG.

Every curve is the mean over training seeds of run-level values, with a ±1 std band (seaborn
``errorbar="sd"``). Configurations that differ in dataset, training batch size or another
identifying column get their own row of panels.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg", force=True)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from noisy_emcom.report import aggregate as agg  # noqa: E402
from noisy_emcom.report import tables  # noqa: E402

FIGURES = (
    "fig_accuracy_vs_p",
    "fig_accuracy_vs_erased",
    "fig_learning_curves",
    "fig_etl",
    "fig_erasure_sensitivity",
)
_ROW_HEIGHT = 2.6


def _model_lines(runs: pd.DataFrame, x: str, y: str, hue_order, row) -> sns.FacetGrid:
    """Seed-mean line per model (±1 sd band), one column per K, optional rows."""
    return sns.relplot(
        data=runs,
        x=x,
        y=y,
        hue="model",
        hue_order=hue_order,
        col="eval_batch_size",
        row=row,
        kind="line",
        marker="o",
        errorbar="sd",
        height=_ROW_HEIGHT,
        aspect=1.1,
        facet_kws={"margin_titles": True},
    )


def _seed_mean_lines(data: pd.DataFrame, spec: str, x: str, y: str) -> tuple[sns.FacetGrid, bool]:
    """Per-run means of `y` by (config, model, K, x), drawn by `_model_lines` with a row per
    varying configuration of table `spec` → (grid, whether configurations vary)."""
    data = agg.add_model(data)
    data, multi = _config_column(data, tables.config_levels(data, tables.PAPER_TABLES[spec]))
    runs = agg.run_level(data, ["config", "model", "eval_batch_size", x], y)
    runs[x] = runs[x].astype(float)
    runs["model"] = runs["model"].astype(str)
    return _model_lines(runs, x, y, _hue_order(data), "config" if multi else None), multi


def _config_column(df: pd.DataFrame, levels: Sequence[str]) -> tuple[pd.DataFrame, bool]:
    """Add ``config`` (a label of the varying configuration levels); True if it varies."""
    df = df.copy()
    varying = agg.varying_columns(df, levels)
    if not varying:
        df["config"] = "all"
        return df, False
    df["config"] = [
        " · ".join(
            f"{tables.HEADERS.get(c, c)}={agg.format_number(v)}"
            for c, v in zip(varying, rec, strict=True)
        )
        for rec in df[varying].itertuples(index=False)
    ]
    return df, True


def _titles(grid: sns.FacetGrid, col: str = "K = {col_name}") -> None:
    """Panel titles: the facet values only (``K = 64``; the row's label)."""
    grid.set_titles(col_template=col, row_template="{row_name}", template=col)


def _empty_figure(title: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(4, 2.5))
    ax.axis("off")
    ax.text(0.5, 0.5, f"{title}\n(no data)", ha="center", va="center")
    return fig


def _hue_order(df: pd.DataFrame) -> list[str]:
    cats = df["model"].cat.categories if hasattr(df["model"], "cat") else None
    present = set(df["model"].astype(str))
    order = list(cats) if cats is not None else sorted(present)
    return [m for m in order if m in present]


def _axes_items(grid: sns.FacetGrid, has_row: bool, has_col: bool):
    """(row_name, col_name, ax) for every panel of a FacetGrid."""
    for key, ax in grid.axes_dict.items():
        if has_row and has_col:
            yield key[0], key[1], ax
        elif has_row:
            yield key, None, ax
        else:
            yield None, key, ax


def _with_identity_at_zero(df: pd.DataFrame) -> pd.DataFrame:
    """Copy the identity-channel rows (p = 0) into every other channel's curve."""
    other = [c for c in df["channel"].dropna().unique() if c != "identity"]
    ident = df[df["channel"] == "identity"]
    if not other or ident.empty:
        return df
    parts = [df[df["channel"] != "identity"]]
    for ch in other:
        parts.append(ident.assign(channel=ch, channel_p=0.0))
    return pd.concat(parts, ignore_index=True)


def accuracy_vs_p(channel: pd.DataFrame, decoding: str = "sample") -> plt.Figure:
    """Channel test: accuracy vs p per game, one panel per (configuration × channel, K), with
    the tight (dashed) and simple (dotted) Fano bounds and chance 1/K (thin grey)."""
    title = "Accuracy vs channel noise"
    data = tables.select("channel", channel, decoding)
    if data.empty:
        return _empty_figure(title)
    data = agg.add_model(data)
    data, multi = _config_column(data, tables.config_levels(data, tables.PAPER_TABLES["channel"]))
    data["channel"] = data["channel"].astype(str)
    keys = ["config", "model", "channel", "channel_p", "eval_batch_size"]
    runs = _with_identity_at_zero(agg.run_level(data, keys, "accuracy"))
    bounds = _with_identity_at_zero(
        data.groupby(["config", "channel", "channel_p", "eval_batch_size"], observed=True)[
            ["fano_bound", "fano_bound_tight"]
        ]
        .first()
        .reset_index()
    )
    for df in (runs, bounds):
        df["panel"] = (df["config"] + " · " if multi else "") + df["channel"]
        df["channel_p"] = df["channel_p"].astype(float)
    grid = _model_lines(
        runs.assign(model=runs["model"].astype(str)),
        "channel_p",
        "accuracy",
        _hue_order(data),
        "panel",
    )
    for panel, k, ax in _axes_items(grid, True, True):
        b = bounds[(bounds["panel"] == panel) & (bounds["eval_batch_size"] == k)]
        b = b.sort_values("channel_p")
        ax.plot(b["channel_p"], b["fano_bound_tight"], ls="--", color="black", lw=1)
        ax.plot(b["channel_p"], b["fano_bound"], ls=":", color="black", lw=1)
        ax.axhline(1.0 / float(k), color="grey", lw=0.6)
    _titles(grid)
    grid.set_axis_labels("channel p", "accuracy")
    grid.figure.suptitle(f"{title} (decoding = {decoding}; dashed: Fano bound)", y=1.02)
    return grid.figure


def accuracy_vs_erased(message: pd.DataFrame, decoding: str = "sample") -> plt.Figure:
    """Message test: accuracy (mean over subsets) vs number of erased positions per game."""
    title = "Accuracy vs erased positions"
    data = tables.select("message", message, decoding)
    if data.empty:
        return _empty_figure(title)
    grid, multi = _seed_mean_lines(data, "message", "n_masked", "accuracy")
    for _, k, ax in _axes_items(grid, multi, True):
        ax.axhline(1.0 / float(k), color="grey", lw=0.6)
    _titles(grid)
    grid.set_axis_labels("erased positions n", "accuracy (mean over subsets)")
    grid.figure.suptitle(f"{title} (decoding = {decoding})", y=1.02)
    return grid.figure


def learning_curves(train_logs: pd.DataFrame, value: str = "accuracy") -> plt.Figure:
    """Training accuracy vs step per game (mean ± std band over seeds)."""
    title = "Learning curves"
    if train_logs.empty or value not in train_logs.columns:
        return _empty_figure(title)
    data = agg.add_model(train_logs)
    data, multi = _config_column(data, list(agg.CONFIG_BASE))
    data = data[["config", "model", "step", value]].copy()
    data[value] = pd.to_numeric(data[value], errors="coerce")
    data["step"] = data["step"].astype(float)
    grid = sns.relplot(
        data=data.assign(model=data["model"].astype(str)),
        x="step",
        y=value,
        hue="model",
        hue_order=_hue_order(data),
        col="config" if multi else None,
        col_wrap=3 if multi else None,
        kind="line",
        errorbar="sd",
        height=3.0,
        aspect=1.3,
    )
    _titles(grid, "{col_name}")
    grid.set_axis_labels("training step", f"training {value}")
    grid.figure.suptitle(title, y=1.02)
    return grid.figure


def etl_bars(etl: pd.DataFrame) -> plt.Figure:
    """ETL test metrics per task: bars per game, hue = ETL noise, ± std over seeds."""
    title = "Ease of transfer learning"
    data = tables.select("etl", etl)
    data = data[data["metric"].astype(str) != "loss"] if not data.empty else data
    if data.empty:
        return _empty_figure(title)
    data = agg.add_model(data)
    data, multi = _config_column(data, tables.config_levels(data, tables.PAPER_TABLES["etl"]))
    data["panel"] = (
        data["task"].astype(str)
        + " ("
        + data["etl_dataset"].astype(str)
        + ")\n"
        + data["metric"].astype(str)
    )
    data["etl_noise"] = data["etl_noise"].map(agg.format_number)
    runs = agg.run_level(data, ["config", "panel", "model", "etl_noise"], "value")
    grid = sns.catplot(
        data=runs.assign(model=runs["model"].astype(str)),
        x="model",
        y="value",
        hue="etl_noise",
        order=_hue_order(data),
        col="panel",
        row="config" if multi else None,
        col_wrap=None if multi else 3,
        kind="bar",
        errorbar="sd",
        sharey=False,
        height=_ROW_HEIGHT,
        aspect=1.2,
    )
    _titles(grid, "{col_name}")
    grid.set_axis_labels("", "value")
    grid.figure.suptitle(title, y=1.02)
    return grid.figure


def erasure_sensitivity(measures: pd.DataFrame, decoding: str = "sample") -> plt.Figure:
    """Per-position erasure sensitivity Δ_K(t) = A_K(∅) − acc_K({t}) per game."""
    title = "Per-position erasure sensitivity"
    data = measures
    if not data.empty:
        data = tables._eq(data, "decoding", decoding)
        data = data[data["measure"].astype("string") == "erasure_sensitivity"]
    if data.empty:
        return _empty_figure(title)
    grid, _ = _seed_mean_lines(data, "redundancy", "position", "value")
    for ax in np.ravel(grid.axes):
        ax.axhline(0.0, color="grey", lw=0.6)
    _titles(grid)
    grid.set_axis_labels("erased position t", "Δ(t) = A(∅) − A({t})")
    grid.figure.suptitle(f"{title} (decoding = {decoding})", y=1.02)
    return grid.figure


__all__ = [
    "FIGURES",
    "accuracy_vs_p",
    "accuracy_vs_erased",
    "learning_curves",
    "etl_bars",
    "erasure_sensitivity",
]
