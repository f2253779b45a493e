"""Report of the convergence study (docs/convergence.md): curves, final accuracies, plateau.

Input: <results>/<group>/<game>-s<seed>/curve.csv rows (group, game, seed, step,
eval_batch_size, channel, channel_p, n_games, accuracy) written by
workflow/scripts/convergence.py. Outputs in <results>: convergence.csv (the rows),
convergence.md (the summary table) and convergence.png (the curves).

Plateau measure of one curve a(s) (seed mean at each evaluated step s, T the last step):
gain over the last fifth = a(T) − a(s'), s' the last evaluated step ≤ 0.8·T; and the
plateau step = the first s from which every later seed mean is within 0.01 of a(T).
"""

from __future__ import annotations

import functools
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg", force=True)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from noisy_emcom import files  # noqa: E402

GAME_LABELS = {"lg_s": "LG(S)", "lg_rl": "LG(RL)", "nlg": "NLG"}
TOLERANCE = 0.01  # "on its plateau": within one point of accuracy of the final value


def read_curves(results: str | Path) -> pd.DataFrame:
    paths = sorted(Path(results).glob("*/*/curve.csv"))
    if not paths:
        raise FileNotFoundError(f"no curve.csv under {results}/<group>/<run>/")
    return pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)


def seed_means(curves: pd.DataFrame) -> pd.DataFrame:
    """Mean, sd and count over seeds per (group, game, K, channel, step)."""
    keys = ["group", "game", "eval_batch_size", "channel", "step"]
    out = curves.groupby(keys)["accuracy"].agg(["mean", "std", "count"]).reset_index()
    return out.rename(columns={"count": "seeds"})


def plateau(steps: np.ndarray, means: np.ndarray, tol: float = TOLERANCE) -> tuple[float, int]:
    """(gain over the last fifth, plateau step) of one seed-mean curve (steps ascending)."""
    last = means[-1]
    ref = max(int(np.searchsorted(steps, 0.8 * steps[-1], side="right")) - 1, 0)
    outside = np.flatnonzero(np.abs(means - last) > tol)
    first = 0 if outside.size == 0 else min(int(outside[-1]) + 1, len(steps) - 1)
    return float(last - means[ref]), int(steps[first])


def summary(curves: pd.DataFrame) -> pd.DataFrame:
    """One row per (group, game, K, channel): final accuracy, gain over the last fifth, plateau
    step, seeds and the last step."""
    rows = []
    means = seed_means(curves)
    for key, part in means.groupby(["group", "game", "eval_batch_size", "channel"]):
        part = part.sort_values("step")
        complete = part[part["seeds"] == part["seeds"].max()]
        gain, step = plateau(complete["step"].to_numpy(), complete["mean"].to_numpy())
        last = complete.iloc[-1]
        rows.append(
            dict(
                zip(["group", "game", "eval_batch_size", "channel"], key, strict=True),
                final_mean=last["mean"],
                final_std=last["std"],
                seeds=int(last["seeds"]),
                last_step=int(last["step"]),
                gain_last_fifth=gain,
                plateau_step=step,
            )
        )
    return pd.DataFrame(rows)


def figure(curves: pd.DataFrame, groups: list[str]) -> plt.Figure:
    """Seed means (±1 sd band) of test accuracy against training steps: one column per group,
    one row per (channel, K), one line per game."""
    means = seed_means(curves)
    ks = sorted(means["eval_batch_size"].unique())
    channels = [c for c in ("identity", "erasure") if c in set(means["channel"])]
    rows = [(c, k) for c in channels for k in ks]
    fig, axes = plt.subplots(
        len(rows), len(groups), figsize=(3.4 * len(groups), 2.4 * len(rows)), squeeze=False
    )
    colors = dict(zip(GAME_LABELS, ("tab:blue", "tab:orange", "tab:green"), strict=True))
    thousands = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v / 1000:g}k")
    for i, (channel, k) in enumerate(rows):
        for j, group in enumerate(groups):
            ax = axes[i][j]
            sel = means[
                (means["group"] == group)
                & (means["eval_batch_size"] == k)
                & (means["channel"] == channel)
            ]
            for game, line in sel.groupby("game"):
                line = line.sort_values("step")
                mean, sd = line["mean"], line["std"].fillna(0)
                ax.plot(line["step"], mean, color=colors[game], label=GAME_LABELS[game])
                ax.fill_between(line["step"], mean - sd, mean + sd, color=colors[game], alpha=0.2)
            ax.set_title(f"{group} · {channel} · K={k}", fontsize=9)
            ax.set_ylim(0, 1)
            ax.grid(alpha=0.3)
            ax.xaxis.set_major_formatter(thousands)
            if i == len(rows) - 1:
                ax.set_xlabel("training step")
            if j == 0:
                ax.set_ylabel("test accuracy")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def _markdown(table: pd.DataFrame) -> str:
    lines = [
        "| group | game | K | channel | seeds | steps | final accuracy | gain over last fifth "
        "| plateau step |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples(index=False):
        sd = "" if pd.isna(r.final_std) else f" ± {r.final_std:.3f}"
        lines.append(
            f"| {r.group} | {GAME_LABELS.get(r.game, r.game)} | {r.eval_batch_size} | {r.channel} "
            f"| {r.seeds} | {r.last_step} | {r.final_mean:.3f}{sd} | {r.gain_last_fifth:+.3f} "
            f"| {r.plateau_step} |"
        )
    return "\n".join(lines) + "\n"


def write_report(study: dict) -> Path:
    """convergence.csv / .md, convergence.png (the study's `main_groups`) and
    convergence_variants.png (the other groups) in the study's results folder."""
    results = Path(study["results"])
    curves = read_curves(results)
    files.atomic_write(results / "convergence.csv", lambda p: curves.to_csv(p, index=False))
    table = summary(curves)
    present = [g for g in study["groups"] if g in set(curves["group"])]
    main = [g for g in study.get("main_groups", present[:1]) if g in present]
    others = [g for g in present if g not in main]
    text = [
        "# Convergence study",
        "",
        f"Test accuracy (seed mean ± sd) on `{study['dataset']}`, decoding sample; gain = "
        "a(T) − a(0.8 T); plateau step = first step from which the seed mean stays within "
        f"{TOLERANCE:g} of its final value.",
        "",
        _markdown(table),
    ]
    files.atomic_write_text(results / "convergence.md", "\n".join(text))
    for name, groups in (("convergence", main), ("convergence_variants", others)):
        if groups:
            fig = figure(curves, groups)
            png = functools.partial(fig.savefig, format="png", dpi=110)
            files.atomic_write(results / f"{name}.png", png)
            plt.close(fig)
    return results / "convergence.md"
