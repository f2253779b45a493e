"""Report stage: synthetic per-run result files → tables, figures, claims, the results page
(docs/tests.md, docs/science.md#claims)."""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from noisy_emcom import configs, evaluate
from noisy_emcom import language as lang
from noisy_emcom.report import ReportInputError, ReportInputs, build_report, expected_outputs
from noisy_emcom.report import claims as claims_mod
from noisy_emcom.report import io as rio
from noisy_emcom.train import LOG_COLUMNS

GAMES = {
    "lg_s": ("lg_rlss", "shapes_logits"),
    "lg_rl": ("lg_rlrl", "shapes_logits"),
    "nlg": ("nlg_rlrl", "shapes_logits_0.5"),
}
SEEDS = (0, 1, 2)
KS = (16, 64)
OFFSET = {0: 0.01, 1: -0.01, 2: 0.0}  # seed offset: mean = the base value, std (ddof 1) = 0.01
BASE = {"lg_s": {16: 0.80, 64: 0.60}, "lg_rl": {16: 0.85, 64: 0.65}, "nlg": {16: 0.84, 64: 0.64}}
SLOPE = {
    "lg_s": {"erasure": 0.6, "substitution": 0.2, "message": 0.1},
    "lg_rl": {"erasure": 0.6, "substitution": 0.2, "message": 0.1},
    "nlg": {"erasure": 0.1, "substitution": 0.8, "message": 0.01},
}
GREEDY_BONUS = 0.05  # greedy rows differ, so a wrong decoding filter shows
STD2 = 0.01


def accuracy(game: str, k: int, seed: int, channel: str, p: float, decoding: str) -> float:
    drop = 0.0 if channel == "identity" else SLOPE[game][channel] * p
    return BASE[game][k] - drop + OFFSET[seed] + (GREEDY_BONUS if decoding == "greedy" else 0)


def config_of(game: str, seed: int):
    preset, sweep = GAMES[game]
    return configs.get_config(preset, sweep, {"batch_size": 64, "random_seed": seed})


def model_cols(cfg) -> dict:
    return {
        "run_id": configs.run_id(cfg),
        "game": cfg.game,
        "dataset": cfg.dataset.name,
        "train_batch_size": int(cfg.batch_size),
        "train_noise": float(cfg.channel.p_max),
        "seed": int(cfg.random_seed),
        "checkpoint_step": 1000,
        "unknown_token_policy": "alias",
        "eval_seed": 42,
        "n_epochs": 5,
    }


def acc_row(cfg, test, k, decoding, channel, p, acc, **setting) -> dict:
    cap = lang.channel_capacity_bits(channel, p or 0.0, setting.get("n_masked") or 0)
    n_games = 1000
    return {
        **model_cols(cfg),
        "test": test,
        "eval_batch_size": k,
        "channel": channel,
        "channel_p": p,
        "decoding": decoding,
        "repetition": 0,
        "n_games": n_games,
        "n_correct": round(acc * n_games),
        "accuracy": acc,
        "accuracy_batch_std": 0.05,
        "speaker_entropy": 1.0,
        "listener_entropy": 0.5,
        "erased_fraction": p or 0.0,
        "capacity_bits": cap,
        "fano_bound": lang.fano_bound(cap, k),
        "fano_bound_tight": lang.fano_bound_tight(cap, k),
        **setting,
    }


def write_run(root: Path, game: str, seed: int, etl: bool = True) -> dict[str, list[Path]]:
    """One run's files under root/runs/<run_id>/ with the pipeline's column sets."""
    cfg = config_of(game, seed)
    run = root / "runs" / configs.run_id(cfg)
    (run / "tests").mkdir(parents=True)
    (run / "config.json").write_text(configs.to_json(cfg))
    files: dict[str, list[Path]] = {k: [] for k in ("tests", "measures", "train_logs", "etl")}
    files["etl_curves"] = []
    decodings = ("sample", "greedy")

    rows = []
    for k in KS:
        for d in decodings:
            for ch, p in [
                ("identity", 0.0),
                ("erasure", 0.25),
                ("erasure", 0.5),
                ("substitution", 0.5),
            ]:
                rows.append(
                    acc_row(cfg, "testchannel", k, d, ch, p, accuracy(game, k, seed, ch, p, d))
                )
    files["tests"].append(
        evaluate.write_table(evaluate.tidy(rows, "channel"), run / "tests/testchannel.csv")[0]
    )

    rows = []
    subsets = lang.mask_subsets(10, (0, 1, 2), 10, 42)
    for k in KS:
        for d in decodings:
            for n, index, pos in subsets:
                acc = accuracy(game, k, seed, "identity", 0.0, d) - SLOPE[game]["message"] * n
                rows.append(
                    acc_row(
                        cfg,
                        "testmessage",
                        k,
                        d,
                        "fixed_erasure",
                        None,
                        acc,
                        n_masked=n,
                        masked_positions=lang.format_positions(pos),
                        subset_index=index,
                    )
                )
    message = evaluate.tidy(rows, "message")
    files["tests"].append(evaluate.write_table(message, run / "tests/testmessage.csv")[0])

    rows = []
    for k in KS:
        for d in decodings:
            for view, loss in (("same", 0.1), ("independent", 0.2)):
                for ch, p in (("identity", 0.0), ("erasure", 0.5)):
                    acc = accuracy(game, k, seed, ch, p, d) - loss
                    rows.append(
                        acc_row(
                            cfg, "testinput", k, d, ch, p, acc, input_noise=1.0, listener_view=view
                        )
                    )
    files["tests"].append(
        evaluate.write_table(evaluate.tidy(rows, "input"), run / "tests/testinput.csv")[0]
    )

    rows = []
    gi = list(GAMES).index(game)
    for k in KS:
        for d in decodings:
            for ch, p in (("identity", 0.0), ("erasure", 0.5)):
                acc = accuracy(game, k, seed, ch, p, d)
                ts = 0.3 + 0.1 * gi - 0.2 * p + OFFSET[seed]
                rows.append(
                    {
                        **acc_row(cfg, "testtopsim", k, d, ch, p, acc),
                        "meaning": "inputs",
                        "message_stage": "post_channel",
                        "topsim": ts,
                        "n_pairs_per_batch": 45,
                        "n_batches": 10,
                        "n_nan_batches": 0,
                    }
                )
    files["tests"].append(
        evaluate.write_table(evaluate.tidy(rows, "topsim"), run / "tests/testtopsim.csv")[0]
    )

    # measures: entropy and uniqueness rows by hand, A_K(n), R_K, Δ and N_eff through the
    # evaluation module itself
    rows = []
    for k in KS:
        for d in decodings:
            ids = {
                **model_cols(cfg),
                "test": "measures",
                "eval_batch_size": k,
                "channel": "identity",
                "channel_p": 0.0,
                "decoding": d,
                "repetition": 0,
            }
            for name, value in (
                ("mean_position_entropy", 3.0 + 0.1 * gi + 5 * OFFSET[seed]),
                ("unique_message_ratio", 0.9 + OFFSET[seed]),
                ("unigram_entropy", 4.0),
            ):
                rows.append(
                    {**ids, "measure": name, "message_stage": "pre_channel", "value": value}
                )
    rows += evaluate.redundancy_measures(message, 10, 20)
    measures = evaluate.tidy(rows, "measures")
    files["measures"].append(evaluate.write_table(measures, run / "measures.csv")[0])

    log = pd.DataFrame({c: np.nan for c in LOG_COLUMNS}, index=range(11))
    log["step"] = np.arange(0, 1100, 100)
    log["accuracy"] = (log["step"] / 1000 * BASE[game][16] + OFFSET[seed]).clip(0, 1)
    log["channel_p"] = 0.0
    log.to_csv(run / "train_log.csv", index=False)
    files["train_logs"].append(run / "train_log.csv")

    if etl:
        for task, ds, metrics in (
            ("classification", "shapes_noimg", ("accuracy", "rank5_accuracy")),
            ("attribute", "shapes_noimg", ("accuracy", "accuracy_color")),
        ):
            for noise in (0.0, 0.5):
                d = run / "etl" / f"{task}-{ds}-p{noise}-sample"
                d.mkdir(parents=True)
                better = 0.15 if (game == "nlg" and noise > 0) else 0.0
                base = 0.5 if noise == 0 else 0.3
                rows = [
                    {
                        **{c: model_cols(cfg)[c] for c in (*rio.RUN_COLUMNS, "checkpoint_step")},
                        "task": task,
                        "etl_dataset": ds,
                        "etl_noise": noise,
                        "decoding": "sample",
                        "etl_seed": 0,
                        "etl_steps": 200,
                        "metric": m,
                        "value": base + better + 0.005 * gi + OFFSET[seed],
                    }
                    for m in metrics
                ]
                pd.DataFrame(rows).to_csv(d / "results.csv", index=False)
                files["etl"].append(d / "results.csv")
                curve = pd.DataFrame(
                    {"step": [100, 200], "loss": [2.0, 1.0], "accuracy": [0.2, base]}
                )
                curve.to_csv(d / "curve.csv", index=False)
                files["etl_curves"].append(d / "curve.csv")
    return files


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> tuple[Path, dict[str, list[Path]]]:
    root = tmp_path_factory.mktemp("results")
    files: dict[str, list[Path]] = {}
    for game in GAMES:
        for seed in SEEDS:
            for fam, paths in write_run(root, game, seed).items():
                files.setdefault(fam, []).extend(paths)
    return root, files


@pytest.fixture(scope="module")
def full_report(grid) -> tuple[Path, list[Path]]:
    root, files = grid
    out = root / "report"
    # Left by a killed build: removed by the next one (checked with the outputs).
    (out / "figures").mkdir(parents=True)
    (out / "figures" / ".fig_etl.png.k1ll3d.tmp").write_bytes(b"partial")
    return out, build_report(ReportInputs(**files), out)


def _cell(table: pd.DataFrame, **where) -> pd.Series:
    mask = np.ones(len(table), bool)
    for c, v in where.items():
        mask &= table[c].astype(str) == str(v)
    assert mask.sum() == 1, (where, mask.sum())
    return table[mask].iloc[0]


def test_full_report_outputs_and_manifest(full_report):
    out, written = full_report
    rel = {str(p.relative_to(out)) for p in written}
    assert rel == set(expected_outputs(list(rio.TESTS), True, True, True, True))
    manifest = json.loads((out / "manifest.json").read_text())
    listed = {e["path"] for e in manifest["outputs"]}
    assert listed == rel - {"manifest.json"}
    assert all(e["bytes"] > 0 for e in manifest["outputs"])
    for stem in (
        "fig_accuracy_vs_p",
        "fig_accuracy_vs_erased",
        "fig_learning_curves",
        "fig_etl",
        "fig_erasure_sensitivity",
    ):
        png, svg = out / f"figures/{stem}.png", out / f"figures/{stem}.svg"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
        assert b"<svg" in svg.read_bytes()[:2000]
    assert not list(out.rglob("*.tmp"))


def test_concatenated_and_seed_aggregated_tables(full_report):
    out, _ = full_report
    channel = pd.read_parquet(out / "tables/testchannel.parquet")
    # games × seeds × K × decodings × settings
    assert len(channel) == 3 * len(SEEDS) * len(KS) * 2 * 4
    assert list(channel.columns) == list(evaluate.columns_for("channel"))
    assert len(pd.read_csv(out / "tables/testchannel.csv")) == len(channel)
    agg = pd.read_csv(out / "tables/testchannel_agg.csv")
    assert "seed" not in agg.columns and "run_id" not in agg.columns
    assert len(agg) == len(channel) // len(SEEDS) and (agg["n"] == len(SEEDS)).all()
    row = _cell(
        agg, game="lg_rl", eval_batch_size=16, channel="erasure", channel_p=0.5, decoding="sample"
    )
    assert row["accuracy_mean"] == pytest.approx(0.85 - 0.6 * 0.5)
    assert row["accuracy_std"] == pytest.approx(STD2)
    assert row["fano_bound"] == pytest.approx(1.0)
    measures = pd.read_csv(out / "tables/measures_agg.csv")
    r = _cell(
        measures, game="nlg", eval_batch_size=64, decoding="sample", measure="unique_message_ratio"
    )
    assert (r["value_mean"], r["value_std"], r["n"]) == (pytest.approx(0.9), pytest.approx(STD2), 3)
    logs = pd.read_csv(out / "tables/train_logs_agg.csv")
    r = _cell(logs, game="lg_s", step=500)
    assert r["accuracy_mean"] == pytest.approx(0.4) and r["accuracy_std"] == pytest.approx(STD2)
    curves = pd.read_csv(out / "tables/etl_curves.csv")
    assert {"run_id", "task", "etl_noise", "step", "loss"} <= set(curves.columns)


def test_paper_tables(full_report):
    out, _ = full_report
    ch = pd.read_csv(out / "tables/table_channel.csv", dtype=str)
    assert list(ch.columns) == [
        "dataset",
        "train_batch_size",
        "model",
        "channel",
        "channel_p",
        "K=16",
        "K=64",
        "n",
    ]
    assert len(ch) == 3 * 4
    assert list(dict.fromkeys(ch["model"])) == ["LG(S)", "LG(RL)", "NLG(0.5)"]
    assert list(ch["channel"][:4]) == ["identity", "erasure", "erasure", "substitution"]
    row = _cell(ch, model="LG(RL)", channel="erasure", channel_p="0.5")
    assert (row["K=16"], row["K=64"]) == ("0.550 ± 0.010", "0.350 ± 0.010")  # sample, not greedy
    md = (out / "tables/table_channel.md").read_text()
    assert "0.550 ± 0.010" in md and "dataset = shapes_logits" in md and "decoding = sample" in md
    tex = (out / "tables/table_channel.tex").read_text()
    assert r"0.550 $\pm$ 0.010" in tex and r"\begin{tabular}" in tex

    msg = pd.read_csv(out / "tables/table_message.csv", dtype=str)
    assert len(msg) == 3 * 3  # games × n ∈ {0, 1, 2}
    assert _cell(msg, model="LG(S)", n_masked="2")["K=16"] == "0.600 ± 0.010"  # mean of subsets

    inp = pd.read_csv(out / "tables/table_input.csv", dtype=str)
    assert len(inp) == 3 * 2 * 2
    row = _cell(inp, model="NLG(0.5)", listener_view="independent", channel_p="0.5")
    assert row["K=64"] == f"{0.64 - 0.05 - 0.2:.3f} ± 0.010"

    ts = pd.read_csv(out / "tables/table_topsim.csv", dtype=str)
    assert _cell(ts, model="LG(RL)", meaning="inputs", channel_p="0.5")["K=16"] == "0.300 ± 0.010"

    etl = pd.read_csv(out / "tables/table_etl.csv", dtype=str)
    assert "accuracy_color" not in set(etl["metric"])
    assert list(etl.columns[-3:]) == ["noise=0", "noise=0.5", "n"]
    row = _cell(etl, task="classification", metric="rank5_accuracy", model="NLG(0.5)")
    assert (row["noise=0"], row["noise=0.5"]) == ("0.510 ± 0.010", "0.460 ± 0.010")

    red = pd.read_csv(out / "tables/table_redundancy.csv", dtype=str)
    assert list(red.columns[-5:]) == [
        "R_K",
        "N_eff",
        "mean token entropy (bits)",
        "unique ratio",
        "n",
    ]
    # R_K by hand: per seed mean over n = 1, 2 of A(n)/A(0), then mean ± std over seeds
    per_seed = [
        np.mean([(0.80 + o - 0.1 * n) / (0.80 + o) for n in (1, 2)]) for o in OFFSET.values()
    ]
    row = _cell(red, model="LG(S)", eval_batch_size="16")
    assert row["R_K"] == f"{np.mean(per_seed):.3f} ± {np.std(per_seed, ddof=1):.3f}"
    assert row["N_eff"].startswith("10.000")  # every position equally sensitive
    assert row["mean token entropy (bits)"] == "3.000 ± 0.050"


def test_claims_on_constructed_grid(full_report):
    out, _ = full_report
    claims = pd.read_csv(out / "tables/claims.csv")
    overall = claims[claims["scope"] == "all"].set_index("claim")["verdict"].to_dict()
    assert overall == {
        1: "supported",
        2: "supported",
        3: "supported",
        4: "supported",
        5: "contradicted",
        6: "supported",
        7: "supported",
    }
    c5 = claims[(claims["claim"] == 5) & (claims["scope"] != "all")].iloc[0]
    assert "✗ substitution p=0.5" in c5["evidence"] and "✓ input noise c=1" in c5["evidence"]
    md = (out / "tables/claims.md").read_text()
    assert "## Claim 5: contradicted" in md and "0.850 ± 0.010 (n=3)" in md


def test_results_page_assembles_the_tables_and_claims(full_report):
    out, _ = full_report
    page = (out / "results.md").read_text()
    assert page.startswith("# Results\n")
    headings = [line for line in page.splitlines() if line.startswith("## ")]
    assert headings[:6] == [
        "## Channel test",
        "## Message test",
        "## Redundancy measures",
        "## Topographic similarity",
        "## Input test",
        "## Ease of transfer learning (ETL)",
    ]
    assert "## Claims of the paper (docs/science.md#claims)" in headings
    assert "### Claim 5: contradicted" in page  # claims.md's headings one level down
    for stem in ("table_channel", "table_message", "table_redundancy", "table_topsim"):
        table = (out / f"tables/{stem}.md").read_text().strip()
        assert table in page  # every paper table verbatim
    assert (out / "tables/table_etl.md").read_text().strip() in page
    claims_rows = [
        r for r in (out / "tables/claims.md").read_text().splitlines() if r.startswith("|")
    ]
    assert claims_rows and all(r in page for r in claims_rows)


def test_results_page_lists_only_present_tables(grid, tmp_path):
    root, files = grid
    tests = [p for p in files["tests"] if p.stem == "testchannel"]
    out = tmp_path / "rep"
    build_report(ReportInputs(tests=tests), out)
    page = (out / "results.md").read_text()
    assert "## Channel test" in page and "## Message test" not in page and "## Ease" not in page
    assert "## Claims of the paper" in page and "No data to test this claim." in page


def test_claim_verdicts_flip_with_the_data(grid):
    root, files = grid
    data = rio.read_tests([p for p in files["tests"] if p.stem == "testchannel"])
    results = claims_mod.evaluate_claims(data)
    verdict = {r.claim: r.verdict for r in results if r.scope == "all"}
    assert verdict[3] == "supported" and verdict[4] == verdict[7] == "not testable"
    swapped = data["testchannel"].copy()
    swapped["game"] = swapped["game"].replace({"lg_s": "lg_rl", "lg_rl": "lg_s"})

    def claim_3(frame):
        results = claims_mod.evaluate_claims({"testchannel": frame})
        return next(r.verdict for r in results if r.scope == "all" and r.claim == 3)

    # LG(RL) 0.05 below LG(S), exactly the margin: neither non-inferior nor shown inferior.
    assert claim_3(swapped) == "undecided (needs more seeds)"
    worse = swapped.copy()
    worse.loc[worse["game"] == "lg_rl", "accuracy"] -= 0.1
    assert claim_3(worse) == "contradicted"
    one_seed = data["testchannel"][data["testchannel"]["seed"] == 0]
    assert claim_3(one_seed) == "undecided (needs more seeds)"


def test_missing_families_are_skipped_via_cli(grid, tmp_path):
    root, files = grid
    spec = importlib.util.spec_from_file_location(
        "report_script", Path(__file__).parents[1] / "workflow/scripts/report.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    tests = [str(p) for p in files["tests"] if p.stem == "testchannel"]
    out = tmp_path / "rep"
    assert (
        script.main(
            [
                "--out-dir",
                str(out),
                "--tests",
                *tests,
                "--train-logs",
                *map(str, files["train_logs"]),
            ]
        )
        == 0
    )
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert written == set(expected_outputs(["testchannel"], train_logs=True))
    assert not (out / "tables/etl.csv").exists() and not (out / "figures/fig_etl.png").exists()
    claims = pd.read_csv(out / "tables/claims.csv")
    overall = claims[claims["scope"] == "all"].set_index("claim")["verdict"]
    assert overall[4] == overall[7] == "not testable" and overall[1] == "supported"


def test_list_outputs_and_bad_inputs(grid, tmp_path, capsys):
    root, files = grid
    spec = importlib.util.spec_from_file_location(
        "report_script", Path(__file__).parents[1] / "workflow/scripts/report.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert (
        script.main(
            ["--out-dir", "R", "--tests", "a/testmessage.csv", "--etl", "x.csv", "--list-outputs"]
        )
        == 0
    )
    listed = capsys.readouterr().out.split()
    assert "R/tables/table_message.tex" in listed and "R/figures/fig_etl.svg" in listed
    assert "R/tables/table_channel.csv" not in listed
    with pytest.raises(ReportInputError, match="nope.csv"):
        build_report(ReportInputs(tests=[tmp_path / "testchannel" / "nope.csv"]), tmp_path / "o")
    assert script.main(["--out-dir", str(tmp_path / "o"), "--measures", "missing.csv"]) == 2
    capsys.readouterr()
    for option, value in (("--alpha", "0"), ("--alpha", "1.5"), ("--margin", "-0.1"),
                          ("--margin", "nan"), ("--alpha", "x")):  # fmt: skip
        with pytest.raises(SystemExit) as stop:
            script.main(["--out-dir", str(tmp_path / "o"), option, value])
        assert stop.value.code == 2
        assert f"argument {option}" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_etl_identity_from_location(tmp_path):
    d = (
        tmp_path
        / "runs"
        / "nlg-shapes_logits-b64-p0.5-s1"
        / "etl"
        / "attribute-shapes_noimg-p0.5-sample"
    )
    d.mkdir(parents=True)
    pd.DataFrame({"metric": ["accuracy"], "value": [0.7]}).to_csv(d / "results.csv", index=False)
    df = rio.read_etl_results([d / "results.csv"])
    row = df.iloc[0]
    assert (row["game"], row["dataset"], row["train_batch_size"], row["seed"]) == (
        "nlg",
        "shapes_logits",
        64,
        1,
    )
    assert (row["task"], row["etl_dataset"], row["etl_noise"]) == ("attribute", "shapes_noimg", 0.5)


def test_every_figure_and_table_has_a_caption():
    captions = Path(__file__).parents[1] / "report" / "captions"
    stems = {Path(p).stem for p in expected_outputs(list(rio.TESTS), True, True, True, True)}
    stems = {s for s in stems if s.startswith(("fig_", "table_")) or s == "claims"}
    assert stems and all((captions / f"{s}.rst").read_text().strip() for s in stems)
    assert (captions.parent / "workflow.rst").exists()


def _set_cell(path: Path, column: str, value: str, where: tuple[str, str] | None = None) -> int:
    """Write ``value`` into ``column`` of the first data row of a CSV file (the first whose
    column where[0] is where[1]) → that row's line number."""
    rows = list(csv.reader(path.open(newline="")))
    header = rows[0]
    line = (
        2
        if where is None
        else 1 + next(i for i, r in enumerate(rows) if i and r[header.index(where[0])] == where[1])
    )
    rows[line - 1][header.index(column)] = value
    with path.open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    return line


def _cut(path: Path, newline: bool) -> int:
    """Cut a CSV file in the middle of its third line (keeping a final newline or not)."""
    lines = path.read_text().split("\n")
    kept = "\n".join(lines[:2]) + "\n" + lines[2][: len(lines[2]) // 2]
    path.write_text(kept + ("\n" if newline else ""))
    return 3


CHANNEL = "runs/lg_s-shapes_logits-b64-p0.0-s0/tests/testchannel.csv"
RUN = "runs/nlg-shapes_logits-b64-p0.5-s2"
ETL = f"{RUN}/etl/attribute-shapes_noimg-p0.5-sample"
# case: (file, damage(path) → line, message after "<file>, line <line>")
BAD_INPUTS = {
    "truncated mid-row": (
        CHANNEL,
        lambda f: _cut(f, newline=False),
        ": the file ends in the middle of a line",
    ),
    "row of too few fields": (
        CHANNEL,
        lambda f: _cut(f, newline=True),
        r": \d+ fields where the header has \d+",
    ),
    "garbled number": (
        CHANNEL,
        lambda f: _set_cell(f, "accuracy", "0.8x"),
        ", column 'accuracy': '0.8x' is not a number",
    ),
    "accuracy above 1": (
        CHANNEL,
        lambda f: _set_cell(f, "accuracy", "7.5"),
        r", column 'accuracy': 7.5 is outside \[0, 1\]",
    ),
    "empty seed": (CHANNEL, lambda f: _set_cell(f, "seed", ""), ", column 'seed': empty"),
    "fractional count": (
        CHANNEL,
        lambda f: _set_cell(f, "n_games", "10.5"),
        ", column 'n_games': '10.5' is not a whole number",
    ),
    "negative entropy": (
        CHANNEL,
        lambda f: _set_cell(f, "speaker_entropy", "-0.1"),
        r", column 'speaker_entropy': -0.1 is outside \[0, inf\]",
    ),
    "measure out of range": (
        f"{RUN}/measures.csv",
        lambda f: _set_cell(f, "value", "1.5", ("measure", "unique_message_ratio")),
        r", column 'value' \(measure 'unique_message_ratio'\): 1.5 is outside \[0, 1\]",
    ),
    "train log step": (
        f"{RUN}/train_log.csv",
        lambda f: _set_cell(f, "step", "1e"),
        ", column 'step': '1e' is not a number",
    ),
    "ETL metric out of range": (
        f"{ETL}/results.csv",
        lambda f: _set_cell(f, "value", "1.2", ("metric", "accuracy_color")),
        r", column 'value' \(metric 'accuracy_color'\): 1.2 is outside \[0, 1\]",
    ),
    "negative ETL loss": (
        f"{ETL}/curve.csv",
        lambda f: _set_cell(f, "loss", "-2"),
        r", column 'loss': -2 is outside \[0, inf\]",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_refused_naming_file_line_and_column(grid, tmp_path, case):
    """Every family is read and checked before anything is written: a bad file (here the
    last family read, ETL, included) leaves the previous report as it was."""
    root, files = grid
    copy = tmp_path / "results"
    shutil.copytree(root / "runs", copy / "runs")
    moved = {fam: [copy / p.relative_to(root) for p in paths] for fam, paths in files.items()}
    name, damage, message = BAD_INPUTS[case]
    path = copy / name
    line = damage(path)
    out = tmp_path / "report"
    (out / "tables").mkdir(parents=True)
    (out / "manifest.json").write_text("previous\n")
    (out / "tables/table_channel.md").write_text("previous table\n")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(ReportInputError, match=f"^{path}, line {line}{message}"):
        build_report(ReportInputs(**moved), out)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_parquet_input_and_empty_file_are_checked(grid, tmp_path):
    root, files = grid
    rows = pd.read_parquet((root / CHANNEL).with_suffix(".parquet"))
    rows.loc[1, "fano_bound"] = 1.5
    rows.to_parquet(tmp_path / "testchannel.parquet", index=False)
    with pytest.raises(ReportInputError, match=r"testchannel.parquet, row 2, column 'fano_bound'"):
        rio.read_tests([tmp_path / "testchannel.parquet"])
    cut = tmp_path / "cut" / "testchannel.parquet"  # a damaged Parquet file: no traceback
    cut.parent.mkdir()
    data = (root / CHANNEL).with_suffix(".parquet").read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ReportInputError, match=f"^{cut}: cannot read"):
        rio.read_tests([cut])
    (tmp_path / "testmessage.csv").write_text("")
    with pytest.raises(ReportInputError, match=r"testmessage.csv: empty file"):
        rio.read_tests([tmp_path / "testmessage.csv"])


def test_empty_values_by_design_pass(grid, tmp_path):
    """NaN where the docs allow it: topsim of a setting whose batches are all undefined, a
    measure that is undefined, LG(S)'s RL statistics in train_log.csv, unused identifying
    columns (channel_p of the message test)."""
    root, files = grid
    run = root / RUN
    topsim = tmp_path / "testtopsim.csv"
    shutil.copy(run / "tests/testtopsim.csv", topsim)
    _set_cell(topsim, "topsim", "")
    _set_cell(topsim, "n_nan_batches", "10")
    assert rio.read_tests([topsim])["testtopsim"]["topsim"].isna().sum() == 1
    measures = tmp_path / "measures.csv"
    shutil.copy(run / "measures.csv", measures)
    _set_cell(measures, "value", "", ("measure", "redundancy"))
    assert rio.read_measures([measures])["value"].isna().sum() == 1
    message = rio.read_tests([run / "tests/testmessage.csv"])["testmessage"]
    assert message["channel_p"].isna().all()
    logs = rio.read_train_logs([root / "runs/lg_s-shapes_logits-b64-p0.0-s0/train_log.csv"])
    assert logs["listener_value"].isna().all() and logs["accuracy"].notna().all()


def test_a_row_given_twice_is_refused_naming_both_files(grid, tmp_path):
    """A file given twice, or a copy of a run's file under another run's folder, would count
    its seeds twice in every mean and claim: refused, naming both places."""
    root, files = grid
    channel = root / CHANNEL
    with pytest.raises(ReportInputError, match=f"^{channel}, line 2 repeats {channel}, line 2"):
        rio.read_tests([channel, channel])
    copy = tmp_path / "testchannel.csv"
    shutil.copy(channel, copy)
    with pytest.raises(ReportInputError, match=f"^{copy}, line 2 repeats {channel}, line 2"):
        rio.read_tests([channel, copy])
    for read, path in [
        (rio.read_measures, root / RUN / "measures.csv"),
        (rio.read_train_logs, root / RUN / "train_log.csv"),
        (rio.read_etl_results, root / ETL / "results.csv"),
        (rio.read_etl_curves, root / ETL / "curve.csv"),
    ]:
        with pytest.raises(ReportInputError, match=f"^{path}, line 2 repeats {path}, line 2"):
            read([path, path])
        assert len(read([path])) == len(pd.read_csv(path))  # alone: every row, none refused


def test_a_table_given_as_the_other_kind_is_named(grid, tmp_path):
    """A measures table given as a test, or a test table as measures, is named for what it
    is (before: an empty-cell error about a column the other kind does not fill)."""
    root, _ = grid
    measures, channel = root / RUN / "measures.csv", root / CHANNEL
    with pytest.raises(ReportInputError, match=f"^{measures}: a table of redundancy measures"):
        rio.read_tests([measures])
    with pytest.raises(ReportInputError, match=f"^{channel}: a table of testchannel, not of"):
        rio.read_measures([channel])
    renamed = tmp_path / "channel_run0.csv"  # named by its test column, not its file name
    shutil.copy(channel, renamed)
    with pytest.raises(ReportInputError, match="a table of testchannel.*--tests"):
        rio.read_measures([renamed])
    assert set(rio.read_tests([renamed])) == {"testchannel"}
