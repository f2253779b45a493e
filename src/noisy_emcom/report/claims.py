"""Check of the paper's qualitative claims (docs/science.md#claims) on the aggregated results.

Every comparison is between run-level values (one per training seed, ``decoding = sample`` by
default), within one configuration (dataset, training batch size and any other identifying
column that varies), and for each NLG variant (training p_max) separately. Each check is a
statistical comparison over seeds (``stats.compare``: Welch t, or paired t for values of the
same runs) and a claim's verdict is ``stats.verdict`` over its checks: *supported*,
*contradicted* or *undecided (needs more seeds)*, at level ``alpha`` (default 0.05); *not
testable* when the data needed for it is absent. ``margin`` δ (default 0.05 in accuracy
units) is the equivalence / non-inferiority margin.

Reading of the claims:
1. erasure p > 0 (testchannel): NLG > every LG game at every (K, p) (greater); and the margin
   NLG − LG grows from the smallest to the largest p, for every LG game at every K (greater, on
   the per-run drops a(p_min) − a(p_max): LG's drop > NLG's).
2. p = 0 (testchannel identity): NLG and LG(RL) equivalent within δ at every K (TOST).
3. p = 0: LG(RL) non-inferior to LG(S) (margin δ) at every K.
4. redundancy R_K (docs/tests.md#accuracy-versus-erased-positions; from testmessage, else
   from the measures): NLG > every LG game at every K (greater).
5. retained accuracy (perturbed / clean at the same K, clean = testchannel identity): under
   input noise (testinput, identity channel, c = 1 or the largest c, each listener view) and
   under substitution (testchannel, each p), NLG non-inferior to every LG game (margin δ).
6. for every model, testchannel identity accuracy falls at each step of K (greater, paired by
   run: a(K_i) > a(K_i+1)).
7. ETL (metrics accuracy, rank5_accuracy with margin δ; psnr with 0.5 dB): at ETL noise 0,
   NLG equivalent to every LG game; at ETL noise > 0, NLG > every LG game.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np
import pandas as pd

from noisy_emcom.report import aggregate as agg
from noisy_emcom.report import stats, tables
from noisy_emcom.report.stats import CONTRADICTED, SUPPORTED, UNDECIDED

NOT_TESTABLE = "not testable"
ALPHA, MARGIN = 0.05, 0.05

CLAIMS = {
    1: "Under erasure p ∈ {0.25, 0.5, 0.75} at test, NLG beats LG(RL) and LG(S) at every K, "
    "more so as p grows.",
    2: "At p = 0, NLG is about as accurate as LG(RL) (no cost of training with noise).",
    3: "LG(RL) is at least as accurate as LG(S) at p = 0.",
    4: "NLG loses less accuracy than LG games as 1→5 positions are erased (redundancy).",
    5: "Under input noise (c = 1) and under substitution, NLG is at least as robust as LG.",
    6: "Accuracy falls as K grows from 16 to 4096 for every model.",
    7: "ETL scores of NLG speakers are comparable to LG speakers at ETL noise 0 and better "
    "with noise.",
}
ETL_MARGIN = {"accuracy": None, "rank5_accuracy": None, "psnr": 0.5}  # None: use margin


@dataclasses.dataclass
class ClaimResult:
    claim: int
    scope: str
    verdict: str
    n_checks: int = 0
    n_passed: int = 0  # checks whose support p-value is below alpha
    evidence: list[str] = dataclasses.field(default_factory=list)
    comparisons: list[stats.Comparison] = dataclasses.field(default_factory=list)

    def check(self, comparison: stats.Comparison, text: str, alpha: float) -> None:
        ok = comparison.testable and comparison.p_support < alpha
        self.n_checks += 1
        self.n_passed += int(ok)
        self.comparisons.append(comparison)
        self.evidence.append(("✓ " if ok else "✗ ") + f"{text}: {comparison.describe()}")

    def finish(self, alpha: float) -> ClaimResult:
        if self.n_checks == 0:
            self.verdict = NOT_TESTABLE
        else:
            self.verdict = stats.verdict(self.comparisons, alpha)
        return self


# --------------------------------------------------------------------------------------------
# Seed statistics per cell
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Stat:
    """Run-level values of one cell (one per training seed), in run order."""

    values: np.ndarray
    runs: tuple[str, ...]

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    def __str__(self) -> str:
        std = float(np.std(self.values, ddof=1)) if self.values.size > 1 else float("nan")
        return agg.format_cell(self.mean, std, 3) + f" (n={self.values.size})"


def _with_config(df: pd.DataFrame, spec: tables.TableSpec) -> pd.DataFrame:
    df = agg.add_model(df)
    levels = tables.config_levels(df, spec)
    df["config"] = [
        " · ".join(
            f"{tables.HEADERS.get(c, c)}={agg.format_number(v)}"
            for c, v in zip(levels, rec, strict=True)
        )
        for rec in df[levels].itertuples(index=False)
    ]
    return df


def _stats(runs: pd.DataFrame, keys: list[str], value: str) -> dict[tuple, Stat]:
    """{(keys…): Stat} from run-level rows (NaN values dropped)."""
    out = {}
    work = runs.dropna(subset=[value]).sort_values("run_id")
    for key, part in work.groupby(keys, sort=True, observed=True):
        key = key if isinstance(key, tuple) else (key,)
        values = part[value].to_numpy(float)
        out[tuple(_norm(k) for k in key)] = Stat(values, tuple(part["run_id"].astype(str)))
    return out


def _paired(a: Stat, b: Stat) -> tuple[np.ndarray, np.ndarray]:
    """Values of the runs present in both cells, in the same order."""
    common = [r for r in a.runs if r in set(b.runs)]

    def pick(s: Stat) -> np.ndarray:
        return np.array([s.values[s.runs.index(r)] for r in common])

    return pick(a), pick(b)


def _norm(v: object) -> object:
    if isinstance(v, float | np.floating):
        return round(float(v), 9)
    if isinstance(v, np.integer):
        return int(v)
    return str(v) if not isinstance(v, int | float) else v


def _models(df: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(LG model labels, NLG model labels) present in ``df`` (with a ``model`` column)."""
    pairs = df[["game", "model"]].drop_duplicates()
    lg = [str(m) for g, m in zip(pairs["game"], pairs["model"], strict=True) if g != "nlg"]
    nlg = [str(m) for g, m in zip(pairs["game"], pairs["model"], strict=True) if g == "nlg"]
    order = [str(c) for c in df["model"].cat.categories]
    return sorted(set(lg), key=order.index), sorted(set(nlg), key=order.index)


def _label(model: str, config: str) -> str:
    return " · ".join(x for x in (config, model) if x)


def _scopes(df: pd.DataFrame) -> Iterable[tuple[str, pd.DataFrame]]:
    for config, part in df.groupby("config", sort=True):
        yield str(config), part


# --------------------------------------------------------------------------------------------
# The claims
# --------------------------------------------------------------------------------------------


def _channel_runs(channel: pd.DataFrame, decoding: str) -> pd.DataFrame:
    data = tables.select("channel", channel, decoding)
    if data.empty:
        return data
    data = _with_config(data, tables.PAPER_TABLES["channel"])
    data["channel"] = data["channel"].astype(str)
    return data


@dataclasses.dataclass(frozen=True)
class Rule:
    """Level and margins of the comparisons (docs/science.md#how-claims-are-decided)."""

    alpha: float = ALPHA
    margin: float = MARGIN  # equivalence / non-inferiority margin (accuracy, retained accuracy)


def _check_each(res, a: Stat, others: dict[str, Stat], kind: str, margin: float, text: str, rule):
    """One comparison of `a` against each of `others` (a first)."""
    for name, b in others.items():
        res.check(
            stats.compare(a.values, b.values, kind, margin), f"{text} vs {name} {b}", rule.alpha
        )


def _present(st: dict, models: list[str], *key) -> dict[str, Stat]:
    found = {m: st.get((m, *key)) for m in models}
    return {m: s for m, s in found.items() if s is not None}


def claim_1(channel: pd.DataFrame, decoding: str, rule: Rule) -> list[ClaimResult]:
    data = _channel_runs(channel, decoding)
    results = []
    if data.empty:
        return results
    for config, part in _scopes(data):
        lg, nlg = _models(part)
        erasure = part[(part["channel"] == "erasure") & (part["channel_p"] > 0)]
        runs = agg.run_level(erasure, ["model", "eval_batch_size", "channel_p"], "accuracy")
        st = _stats(runs, ["model", "eval_batch_size", "channel_p"], "accuracy")
        ps = sorted(erasure["channel_p"].dropna().unique())
        for n in nlg:
            res = ClaimResult(1, _label(n, config), "")
            for k in sorted(erasure["eval_batch_size"].dropna().unique()):
                for p in ps:
                    a = st.get((n, int(k), _norm(p)))
                    if a is not None:
                        others = _present(st, lg, int(k), _norm(p))
                        _check_each(res, a, others, "greater", 0.0, f"K={k} p={p:g}: {n} {a}", rule)
                if len(ps) < 2:
                    continue
                lo, hi = _norm(ps[0]), _norm(ps[-1])
                drops = {}
                for m in [n, *lg]:
                    a0, a1 = st.get((m, int(k), lo)), st.get((m, int(k), hi))
                    if a0 is not None and a1 is not None:
                        x0, x1 = _paired(a0, a1)
                        drops[m] = Stat(x0 - x1, tuple(r for r in a0.runs if r in a1.runs))
                if n not in drops:
                    continue
                for m, drop in drops.items():
                    if m == n:
                        continue
                    res.check(
                        stats.compare(drop.values, drops[n].values, "greater"),
                        f"K={k}: margin over {m} grows from p={ps[0]:g} to p={ps[-1]:g} "
                        f"(drop {m} {drop} vs {n} {drops[n]})",
                        rule.alpha,
                    )
            results.append(res.finish(rule.alpha))
    return results


def _identity_stats(part: pd.DataFrame) -> dict[tuple, Stat]:
    ident = part[part["channel"] == "identity"]
    runs = agg.run_level(ident, ["model", "eval_batch_size"], "accuracy")
    return _stats(runs, ["model", "eval_batch_size"], "accuracy")


def _pairwise_identity(
    channel: pd.DataFrame, decoding: str, claim: int, rule: Rule
) -> list[ClaimResult]:
    data = _channel_runs(channel, decoding)
    results = []
    if data.empty:
        return results
    kind = "equivalent" if claim == 2 else "noninferior"
    for config, part in _scopes(data):
        lg, nlg = _models(part)
        st = _identity_stats(part)
        ks = sorted(part.loc[part["channel"] == "identity", "eval_batch_size"].dropna().unique())
        pairs = [(n, "LG(RL)") for n in nlg] if claim == 2 else [("LG(RL)", "LG(S)")]
        for a_name, b_name in pairs:
            res = ClaimResult(claim, _label(a_name if claim == 2 else "", config), "")
            if not {a_name, b_name} <= {*lg, *nlg}:
                results.append(res.finish(rule.alpha))
                continue
            for k in ks:
                a, b = st.get((a_name, int(k))), st.get((b_name, int(k)))
                if a is not None and b is not None:
                    text = f"K={k}: {a_name} {a}"
                    _check_each(res, a, {b_name: b}, kind, rule.margin, text, rule)
            results.append(res.finish(rule.alpha))
    return results


def _redundancy_runs(message: pd.DataFrame, measures: pd.DataFrame, decoding: str):
    """Run-level R_K with columns run_id, seed, config, model, eval_batch_size, redundancy."""
    data = tables.select("message", message, decoding)
    if not data.empty:
        data = _with_config(data, tables.PAPER_TABLES["message"])
        keys = ["config", "model", "game", "eval_batch_size"]
        curve = agg.run_level(data, [*keys, "n_masked"], "accuracy")
        base = curve[curve["n_masked"] == 0][["run_id", *keys, "accuracy"]]
        base = base.rename(columns={"accuracy": "a0"})
        curve = curve[curve["n_masked"] >= 1].merge(base, on=["run_id", *keys])
        curve["norm"] = (curve["accuracy"] / curve["a0"]).where(curve["a0"] > 0)
        runs = agg.run_level(curve, keys, "norm").rename(columns={"norm": "redundancy"})
        return runs, "testmessage"
    data = tables.select("redundancy", measures, decoding)
    if not data.empty:
        data = data[data["measure"].astype(str) == "redundancy"]
    if data.empty:
        return pd.DataFrame(), ""
    data = _with_config(data, tables.PAPER_TABLES["redundancy"])
    keys = ["config", "model", "game", "eval_batch_size"]
    runs = agg.run_level(data, keys, "value").rename(columns={"value": "redundancy"})
    return runs, "measures"


def _lg_nlg(part: pd.DataFrame) -> tuple[list[str], list[str]]:
    pairs = part[["game", "model"]].drop_duplicates()
    lg = sorted({m for g, m in zip(pairs["game"], pairs["model"], strict=True) if g != "nlg"})
    nlg = sorted({m for g, m in zip(pairs["game"], pairs["model"], strict=True) if g == "nlg"})
    return lg, nlg


def claim_4(
    message: pd.DataFrame, measures: pd.DataFrame, decoding: str, rule: Rule
) -> list[ClaimResult]:
    runs, source = _redundancy_runs(message, measures, decoding)
    results = []
    if runs.empty:
        return results
    runs["model"] = runs["model"].astype(str)
    for config, part in runs.groupby("config", sort=True):
        lg, nlg = _lg_nlg(part)
        st = _stats(part, ["model", "eval_batch_size"], "redundancy")
        for n in nlg:
            res = ClaimResult(4, _label(n, str(config)), "")
            for k in sorted(part["eval_batch_size"].dropna().unique()):
                a = st.get((n, int(k)))
                if a is not None:
                    text = f"K={k}: R_K ({source}) {n} {a}"
                    _check_each(res, a, _present(st, lg, int(k)), "greater", 0.0, text, rule)
            results.append(res.finish(rule.alpha))
    return results


def claim_5(
    channel: pd.DataFrame, inputs: pd.DataFrame, decoding: str, rule: Rule
) -> list[ClaimResult]:
    data = _channel_runs(channel, decoding)
    results = []
    if data.empty:
        return results
    keys = ["config", "model", "game", "eval_batch_size"]
    clean = agg.run_level(data[data["channel"] == "identity"], keys, "accuracy")
    clean = clean.rename(columns={"accuracy": "clean"})
    perturbed = []
    subst = data[(data["channel"] == "substitution") & (data["channel_p"] > 0)].copy()
    if not subst.empty:
        subst["setting"] = "substitution p=" + subst["channel_p"].map(agg.format_number)
        perturbed.append(agg.run_level(subst, [*keys, "setting"], "accuracy"))
    inp = tables.select("input", inputs, decoding)
    if not inp.empty:
        inp = _with_config(inp, tables.PAPER_TABLES["input"])
        inp = inp[(inp["channel"].astype(str) == "identity") & (inp["input_noise"] > 0)]
    if not inp.empty:
        coeffs = sorted(inp["input_noise"].dropna().unique())
        c = 1.0 if 1.0 in coeffs else coeffs[-1]
        inp = inp[inp["input_noise"] == c].copy()
        inp["setting"] = f"input noise c={c:g} view=" + inp["listener_view"].astype(str)
        perturbed.append(agg.run_level(inp, [*keys, "setting"], "accuracy"))
    if not perturbed:
        return results
    runs = pd.concat(perturbed, ignore_index=True).merge(clean, on=["run_id", "seed", *keys])
    runs["retained"] = (runs["accuracy"] / runs["clean"]).where(runs["clean"] > 0)
    runs["model"] = runs["model"].astype(str)
    for config, part in runs.groupby("config", sort=True):
        lg, nlg = _lg_nlg(part)
        st = _stats(part, ["model", "setting", "eval_batch_size"], "retained")
        for n in nlg:
            res = ClaimResult(5, _label(n, str(config)), "")
            for setting in sorted(part["setting"].unique()):
                for k in sorted(part["eval_batch_size"].dropna().unique()):
                    a = st.get((n, setting, int(k)))
                    if a is None:
                        continue
                    others = _present(st, lg, setting, int(k))
                    text = f"{setting} K={k}: retained accuracy {n} {a}"
                    _check_each(res, a, others, "noninferior", rule.margin, text, rule)
            results.append(res.finish(rule.alpha))
    return results


def claim_6(channel: pd.DataFrame, decoding: str, rule: Rule) -> list[ClaimResult]:
    data = _channel_runs(channel, decoding)
    results = []
    if data.empty:
        return results
    for config, part in _scopes(data):
        st = _identity_stats(part)
        lg, nlg = _models(part)
        for m in [*lg, *nlg]:
            res = ClaimResult(6, _label(m, config), "")
            ks = sorted(k for (mm, k) in st if mm == m)
            for k0, k1 in zip(ks[:-1], ks[1:], strict=True):
                a0, a1 = _paired(st[(m, k0)], st[(m, k1)])
                res.check(
                    stats.compare(a0, a1, "greater", paired=True),
                    f"K={k0} → {k1}: {st[(m, k0)]} → {st[(m, k1)]}",
                    rule.alpha,
                )
            results.append(res.finish(rule.alpha))
    return results


def claim_7(etl: pd.DataFrame, rule: Rule) -> list[ClaimResult]:
    results = []
    if etl.empty:
        return results
    data = etl[etl["metric"].astype(str).isin(list(ETL_MARGIN))]
    if data.empty:
        return results
    data = _with_config(data, tables.PAPER_TABLES["etl"])
    keys = ["model", "task", "etl_dataset", "metric", "etl_noise"]
    for config, part in _scopes(data):
        lg, nlg = _models(part)
        runs = agg.run_level(part, keys, "value")
        st = _stats(runs, keys, "value")
        cells = part[["task", "etl_dataset", "metric", "etl_noise"]].drop_duplicates()
        cells = cells.sort_values(["task", "etl_dataset", "metric", "etl_noise"])
        for n in nlg:
            res = ClaimResult(7, _label(n, config), "")
            for task, etl_ds, metric, noise in cells.itertuples(index=False):
                cell = (str(task), str(etl_ds), str(metric), _norm(noise))
                a = st.get((n, *cell))
                if a is None:
                    continue
                margin = ETL_MARGIN[str(metric)] or rule.margin
                kind = "equivalent" if float(noise) == 0 else "greater"
                text = f"{task} ({etl_ds}) {metric} at noise {noise:g} ({kind}): {n} {a}"
                _check_each(res, a, _present(st, lg, *cell), kind, margin, text, rule)
            results.append(res.finish(rule.alpha))
    return results


def evaluate_claims(
    results: dict[str, pd.DataFrame], decoding: str = "sample", rule: Rule = Rule()
) -> list[ClaimResult]:
    """All claims (docs/science.md#claims) on the concatenated tables ``results`` (keys
    testchannel, testmessage, testinput, testtopsim, measures, etl; any may be absent or empty).

    Returns one overall result per claim (scope ``all``, the verdict over every check of every
    scope) followed by the per-scope results.
    """

    def get(name: str) -> pd.DataFrame:
        df = results.get(name)
        return df if df is not None else pd.DataFrame()

    channel = get("testchannel")
    per_claim = {
        1: claim_1(channel, decoding, rule),
        2: _pairwise_identity(channel, decoding, 2, rule),
        3: _pairwise_identity(channel, decoding, 3, rule),
        4: claim_4(get("testmessage"), get("measures"), decoding, rule),
        5: claim_5(channel, get("testinput"), decoding, rule),
        6: claim_6(channel, decoding, rule),
        7: claim_7(get("etl"), rule),
    }
    out = []
    for claim, parts in per_claim.items():
        overall = ClaimResult(claim, "all", "")
        overall.n_checks = sum(p.n_checks for p in parts)
        overall.n_passed = sum(p.n_passed for p in parts)
        overall.comparisons = [c for p in parts for c in p.comparisons]
        overall.finish(rule.alpha)
        out.append(overall)
        out += parts
    return out


def to_frame(results: list[ClaimResult]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "claim": r.claim,
                "scope": r.scope,
                "verdict": r.verdict,
                "n_checks": r.n_checks,
                "n_passed": r.n_passed,
                "statement": CLAIMS[r.claim],
                "evidence": "; ".join(r.evidence),
            }
            for r in results
        ],
        columns=["claim", "scope", "verdict", "n_checks", "n_passed", "statement", "evidence"],
    )


def to_markdown(results: list[ClaimResult], decoding: str, rule: Rule = Rule()) -> str:
    lines = [
        "# Claims of the paper (docs/science.md#claims)",
        "",
        f"Run-level values over training seeds (mean ± std, n = seeds), decoding = {decoding}. "
        f"Each check is a one-sided Welch (or paired) t-test over seeds at alpha = {rule.alpha:g}; "
        f"equivalence and non-inferiority margin δ = {rule.margin:g} (accuracy units; 0.5 dB "
        "for PSNR). A claim is supported when every check is (intersection-union test), "
        "contradicted when one check's opposite holds at alpha / checks (Bonferroni), undecided "
        "otherwise (docs/science.md#how-claims-are-decided). ✓ marks a check whose support "
        "p-value is below alpha; d = difference of means (or mean paired difference).",
        "",
        "| claim | verdict | checks passed | statement |",
        "|---|---|---|---|",
    ]
    overall = [r for r in results if r.scope == "all"]
    for r in overall:
        lines.append(f"| {r.claim} | {r.verdict} | {r.n_passed}/{r.n_checks} | {CLAIMS[r.claim]} |")
    for r0 in overall:
        lines += ["", f"## Claim {r0.claim}: {r0.verdict}", "", CLAIMS[r0.claim], ""]
        scoped = [r for r in results if r.claim == r0.claim and r.scope != "all"]
        if not scoped or r0.verdict == NOT_TESTABLE:
            lines.append("No data to test this claim.")
        for r in scoped:
            lines += [f"### {r.scope}: {r.verdict} ({r.n_passed}/{r.n_checks})", ""]
            lines += [f"- {e}" for e in r.evidence] or ["- no comparable cells"]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


__all__ = [
    "CLAIMS",
    "SUPPORTED",
    "CONTRADICTED",
    "UNDECIDED",
    "NOT_TESTABLE",
    "Rule",
    "ClaimResult",
    "evaluate_claims",
    "to_frame",
    "to_markdown",
]
