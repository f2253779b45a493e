"""Check of the paper's qualitative claims (docs/science.md#claims) on the aggregated results.

Every comparison is between seed means (mean ± std over training seeds of run-level values,
``decoding = sample`` by default), within one configuration (dataset, training batch size and
any other identifying column that varies), and for each NLG variant (training p_max)
separately. A claim is *supported* when every check passes, *not supported* when one fails
and *not testable* when the data needed for it is absent (no check could be made).

Reading of the claims (``tol`` = the tolerance, default 0.02 in accuracy units):
1. erasure p > 0 (testchannel): NLG > every LG game at every (K, p), strictly; and the margin
   NLG − best LG at the largest p exceeds the margin at the smallest p, at every K.
2. p = 0 (testchannel identity): |NLG − LG(RL)| ≤ tol at every K.
3. p = 0: LG(RL) ≥ LG(S) − tol at every K.
4. redundancy R_K (docs/tests.md#accuracy-versus-erased-positions; from testmessage, else
   from the measures): NLG > every LG game at every K.
5. retained accuracy (perturbed / clean at the same K, clean = testchannel identity): under
   input noise (testinput, identity channel, c = 1 or the largest c, each listener view) and
   under substitution (testchannel, each p), NLG ≥ every LG game − tol.
6. for every model, testchannel identity accuracy is non-increasing in K (each step at most
   +tol) and lower at the largest K than at the smallest.
7. ETL (metrics accuracy, rank5_accuracy with tolerance tol; psnr with 0.5 dB): at ETL noise 0,
   |NLG − LG| within the tolerance for every LG game; at ETL noise > 0, NLG > every LG game.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np
import pandas as pd

from noisy_emcom.report import aggregate as agg
from noisy_emcom.report import tables

SUPPORTED, NOT_SUPPORTED, NOT_TESTABLE = "supported", "not supported", "not testable"

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
ETL_TOLERANCE = {"accuracy": None, "rank5_accuracy": None, "psnr": 0.5}  # None: use tol


@dataclasses.dataclass
class ClaimResult:
    claim: int
    scope: str
    verdict: str
    n_checks: int = 0
    n_passed: int = 0
    evidence: list[str] = dataclasses.field(default_factory=list)

    def check(self, ok: bool, text: str) -> None:
        self.n_checks += 1
        self.n_passed += int(bool(ok))
        self.evidence.append(("✓ " if ok else "✗ ") + text)

    def finish(self) -> ClaimResult:
        if self.n_checks == 0:
            self.verdict = NOT_TESTABLE
        else:
            self.verdict = SUPPORTED if self.n_passed == self.n_checks else NOT_SUPPORTED
        return self


# --------------------------------------------------------------------------------------------
# Seed statistics per cell
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Stat:
    mean: float
    std: float
    n: int

    def __str__(self) -> str:
        return agg.format_cell(self.mean, self.std, 3) + f" (n={self.n})"


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
    """{(keys…): Stat} from run-level rows."""
    st = agg.seed_stats(runs, keys, [value])
    out = {}
    for rec in st.to_dict("records"):
        out[tuple(_norm(rec[k]) for k in keys)] = Stat(
            float(rec[f"{value}_mean"]), float(rec[f"{value}_std"]), int(rec["n"])
        )
    return out


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


def claim_1(channel: pd.DataFrame, decoding: str) -> list[ClaimResult]:
    data = _channel_runs(channel, decoding)
    results = []
    if data.empty:
        return results
    for config, part in _scopes(data):
        lg, nlg = _models(part)
        erasure = part[(part["channel"] == "erasure") & (part["channel_p"] > 0)]
        runs = agg.run_level(erasure, ["model", "eval_batch_size", "channel_p"], "accuracy")
        st = _stats(runs, ["model", "eval_batch_size", "channel_p"], "accuracy")
        for n in nlg:
            res = ClaimResult(1, _label(n, config), "")
            for k in sorted(erasure["eval_batch_size"].dropna().unique()):
                ps = sorted(erasure["channel_p"].dropna().unique())
                margins = []
                for p in ps:
                    a = st.get((n, int(k), _norm(p)))
                    others = {m: st.get((m, int(k), _norm(p))) for m in lg}
                    others = {m: s for m, s in others.items() if s is not None}
                    if a is None or not others:
                        continue
                    ok = all(a.mean > s.mean for s in others.values())
                    text = ", ".join(f"{m} {s}" for m, s in others.items())
                    res.check(ok, f"K={k} p={p:g}: {n} {a} vs {text}")
                    margins.append((p, a.mean - max(s.mean for s in others.values())))
                if len(margins) >= 2:
                    (p0, m0), (p1, m1) = margins[0], margins[-1]
                    res.check(
                        m1 > m0,
                        f"K={k}: margin over the best LG grows from {m0:+.3f} (p={p0:g}) to "
                        f"{m1:+.3f} (p={p1:g})",
                    )
            results.append(res.finish())
    return results


def _identity_stats(part: pd.DataFrame) -> dict[tuple, Stat]:
    ident = part[part["channel"] == "identity"]
    runs = agg.run_level(ident, ["model", "eval_batch_size"], "accuracy")
    return _stats(runs, ["model", "eval_batch_size"], "accuracy")


def _pairwise_identity(
    channel: pd.DataFrame, decoding: str, claim: int, tol: float
) -> list[ClaimResult]:
    data = _channel_runs(channel, decoding)
    results = []
    if data.empty:
        return results
    for config, part in _scopes(data):
        lg, nlg = _models(part)
        st = _identity_stats(part)
        ks = sorted(part.loc[part["channel"] == "identity", "eval_batch_size"].dropna().unique())
        if claim == 2:
            pairs = [(n, "LG(RL)") for n in nlg]
        else:
            pairs = [("LG(RL)", "LG(S)")]
        for a_name, b_name in pairs:
            res = ClaimResult(claim, _label(a_name if claim == 2 else "", config), "")
            if not {a_name, b_name} <= {*lg, *nlg}:
                results.append(res.finish())
                continue
            for k in ks:
                a, b = st.get((a_name, int(k))), st.get((b_name, int(k)))
                if a is None or b is None:
                    continue
                diff = a.mean - b.mean
                ok = abs(diff) <= tol if claim == 2 else diff >= -tol
                res.check(ok, f"K={k}: {a_name} {a} vs {b_name} {b} (diff {diff:+.3f})")
            results.append(res.finish())
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


def claim_4(message: pd.DataFrame, measures: pd.DataFrame, decoding: str) -> list[ClaimResult]:
    runs, source = _redundancy_runs(message, measures, decoding)
    results = []
    if runs.empty:
        return results
    runs["model"] = runs["model"].astype(str)
    for config, part in runs.groupby("config", sort=True):
        pairs = part[["game", "model"]].drop_duplicates()
        lg = [m for g, m in zip(pairs["game"], pairs["model"], strict=True) if g != "nlg"]
        nlg = [m for g, m in zip(pairs["game"], pairs["model"], strict=True) if g == "nlg"]
        st = _stats(part, ["model", "eval_batch_size"], "redundancy")
        for n in sorted(nlg):
            res = ClaimResult(4, _label(n, str(config)), "")
            for k in sorted(part["eval_batch_size"].dropna().unique()):
                a = st.get((n, int(k)))
                others = {m: st.get((m, int(k))) for m in sorted(set(lg))}
                others = {m: s for m, s in others.items() if s is not None}
                if a is None or not others:
                    continue
                ok = all(a.mean > s.mean for s in others.values())
                text = ", ".join(f"{m} {s}" for m, s in others.items())
                res.check(ok, f"K={k}: R_K ({source}) {n} {a} vs {text}")
            results.append(res.finish())
    return results


def claim_5(
    channel: pd.DataFrame, inputs: pd.DataFrame, decoding: str, tol: float
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
        pairs = part[["game", "model"]].drop_duplicates()
        lg = sorted({m for g, m in zip(pairs["game"], pairs["model"], strict=True) if g != "nlg"})
        nlg = sorted({m for g, m in zip(pairs["game"], pairs["model"], strict=True) if g == "nlg"})
        st = _stats(part, ["model", "setting", "eval_batch_size"], "retained")
        for n in nlg:
            res = ClaimResult(5, _label(n, str(config)), "")
            for setting in sorted(part["setting"].unique()):
                for k in sorted(part["eval_batch_size"].dropna().unique()):
                    a = st.get((n, setting, int(k)))
                    others = {m: st.get((m, setting, int(k))) for m in lg}
                    others = {m: s for m, s in others.items() if s is not None}
                    if a is None or not others:
                        continue
                    ok = all(a.mean >= s.mean - tol for s in others.values())
                    text = ", ".join(f"{m} {s}" for m, s in others.items())
                    res.check(ok, f"{setting} K={k}: retained accuracy {n} {a} vs {text}")
            results.append(res.finish())
    return results


def claim_6(channel: pd.DataFrame, decoding: str, tol: float) -> list[ClaimResult]:
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
            if len(ks) >= 2:
                vals = [st[(m, k)] for k in ks]
                for i in range(len(ks) - 1):
                    a0, a1 = vals[i], vals[i + 1]
                    res.check(a1.mean <= a0.mean + tol, f"K={ks[i]} → {ks[i + 1]}: {a0} → {a1}")
                res.check(
                    vals[-1].mean < vals[0].mean,
                    f"K={ks[0]} vs K={ks[-1]}: {vals[0]} > {vals[-1]}",
                )
            results.append(res.finish())
    return results


def claim_7(etl: pd.DataFrame, tol: float) -> list[ClaimResult]:
    results = []
    if etl.empty:
        return results
    data = etl[etl["metric"].astype(str).isin(list(ETL_TOLERANCE))]
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
                a = st.get((n, str(task), str(etl_ds), str(metric), _norm(noise)))
                others = {
                    m: st.get((m, str(task), str(etl_ds), str(metric), _norm(noise))) for m in lg
                }
                others = {m: s for m, s in others.items() if s is not None}
                if a is None or not others:
                    continue
                t = ETL_TOLERANCE[str(metric)] or tol
                if float(noise) == 0:
                    ok = all(abs(a.mean - s.mean) <= t for s in others.values())
                    how = f"comparable within {t:g}"
                else:
                    ok = all(a.mean > s.mean for s in others.values())
                    how = "better"
                text = ", ".join(f"{m} {s}" for m, s in others.items())
                res.check(
                    ok, f"{task} ({etl_ds}) {metric} at noise {noise:g} ({how}): {n} {a} vs {text}"
                )
            results.append(res.finish())
    return results


def evaluate_claims(
    results: dict[str, pd.DataFrame], decoding: str = "sample", tol: float = 0.02
) -> list[ClaimResult]:
    """All claims (docs/science.md#claims) on the concatenated tables ``results`` (keys
    testchannel, testmessage, testinput, testtopsim, measures, etl; any may be absent or empty).

    Returns one overall result per claim (scope ``all``) followed by the per-scope results.
    """

    def get(name: str) -> pd.DataFrame:
        df = results.get(name)
        return df if df is not None else pd.DataFrame()

    channel = get("testchannel")
    per_claim = {
        1: claim_1(channel, decoding),
        2: _pairwise_identity(channel, decoding, 2, tol),
        3: _pairwise_identity(channel, decoding, 3, tol),
        4: claim_4(get("testmessage"), get("measures"), decoding),
        5: claim_5(channel, get("testinput"), decoding, tol),
        6: claim_6(channel, decoding, tol),
        7: claim_7(get("etl"), tol),
    }
    out = []
    for claim, parts in per_claim.items():
        overall = ClaimResult(claim, "all", "")
        overall.n_checks = sum(p.n_checks for p in parts)
        overall.n_passed = sum(p.n_passed for p in parts)
        overall.finish()
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


def to_markdown(results: list[ClaimResult], decoding: str, tol: float) -> str:
    lines = [
        "# Claims of the paper (docs/science.md#claims)",
        "",
        f"Seed means (mean ± std over training seeds, n = seeds), decoding = {decoding}, "
        f"tolerance = {tol:g}. ✓/✗ mark each check.",
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
    "NOT_SUPPORTED",
    "NOT_TESTABLE",
    "ClaimResult",
    "evaluate_claims",
    "to_frame",
    "to_markdown",
]
