"""Tests of noisy_emcom.evaluate: protocol, known answers, tables, and every mode end to end."""

import math

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from noisy_emcom import configs, game, losses, networks
from noisy_emcom import evaluate as ev
from noisy_emcom import language as lang

V, T = 20, 10

SMALL_EVAL = {
    "eval.batch_sizes": (8, 16),
    "eval.epochs": 1,
    "eval.topsim_ratios": (0.2, 0.2),
    "eval.erasure_ps": (0.5,),
    "eval.substitution_ps": (0.5,),
    "eval.mask_counts": (0, 1, 2),
    "eval.max_mask_subsets": 3,
}


def small_config(preset="lg_rlrl", sweep="debug", **extra):
    overrides = {
        "speaker.lstm_size": 16,
        "listener.lstm_size": 16,
        "listener.hidden": 16,
        **SMALL_EVAL,
        **extra,
    }
    return configs.get_config(preset, sweep, overrides)


# ------------------------------------------------------------------ a hand-made perfect code
#
# Input x = (a, b, 0, ...) with digits a, b ∈ 0..V−1. The speaker says [a, b, a, b, 0, ..., 0]:
# positions 0 and 2 carry a, 1 and 3 carry b, 4..9 nothing. The listener reads each digit from
# either copy; if both copies of a digit are erased it gives up (all scores equal, so argmax
# picks candidate 0: only game 0 of each batch succeeds). Otherwise it scores candidate j by
# the number of digits that match, so it is always right (inputs are distinct).


def code_speaker(params, x, key, mode, forced_tokens=None):
    del params, key, mode, forced_tokens
    a, b = x[:, 0].astype(jnp.int32), x[:, 1].astype(jnp.int32)
    zeros = jnp.zeros_like(a)
    tokens = jnp.stack([a, b, a, b] + [zeros] * (T - 4), axis=1)
    k = x.shape[0]
    return networks.SpeakerOutput(
        tokens, jnp.zeros((k, T)), jnp.zeros((k, T)), jnp.zeros((k, T, V)), jnp.zeros((k, T))
    )


def code_listener(params, tokens, candidates, compute_value=False):
    del params, compute_value

    def read(first, second):
        return jnp.where(first != V, first, jnp.where(second != V, second, -1))

    a, b = read(tokens[:, 0], tokens[:, 2]), read(tokens[:, 1], tokens[:, 3])
    ca, cb = candidates[:, 0].astype(jnp.int32), candidates[:, 1].astype(jnp.int32)
    lost = (a < 0) | (b < 0)
    score = (a[:, None] == ca[None, :]).astype(jnp.float32) + (b[:, None] == cb[None, :])
    return networks.ListenerOutput(jnp.where(lost[:, None], 0.0, score), None)


CODE_N = 400  # every known-answer test uses the same data size, K and epochs: shared compiles


def code_model(**extra):
    cfg = small_config(
        **{
            "eval.decodings": ("greedy",),
            "eval.batch_sizes": (16,),
            "eval.topsim_ratios": (0.2,),
            **extra,
        }
    )
    nets = game.Nets(hk.Transformed(None, code_speaker), hk.Transformed(None, code_listener))
    return ev.Model(cfg, nets, {}, {}, step=0)


def code_data(n=CODE_N):
    i = np.arange(n)
    x = np.zeros((n, 4), np.float32)
    x[:, 0], x[:, 1] = i % V, i // V  # distinct (a, b) pairs
    return ev.EvalData("code", x)


def test_perfect_code_identity_and_redundant_erasures():
    model, data = code_model(), code_data()
    df = ev.run_testmessage(model, data)
    for rec in df.to_dict("records"):
        positions = set(lang.parse_positions(rec["masked_positions"]))
        k = rec["eval_batch_size"]
        lost = {0, 2} <= positions or {1, 3} <= positions
        assert rec["accuracy"] == pytest.approx(1 / k if lost else 1.0), rec
        assert rec["n_games"] == (CODE_N // k) * k
    assert df["erased_fraction"].tolist() == pytest.approx((df["n_masked"] / T).tolist())
    ch = ev.run_testchannel(model, data)
    assert (ch.loc[ch["channel"] == "identity", "accuracy"] == 1.0).all()


def test_perfect_code_lost_pair_gives_exactly_one_over_k():
    model = code_model(**{"eval.mask_counts": (2,), "eval.max_mask_subsets": 100})
    df = ev.run_testmessage(model, code_data())
    assert len(df) == math.comb(T, 2)  # 45 subsets (one K, greedy only)
    lost = df[df["masked_positions"].isin(["0-2", "1-3"])]
    assert len(lost) == 2
    assert (lost["accuracy"] == 1 / lost["eval_batch_size"]).all()
    assert (df.loc[~df.index.isin(lost.index), "accuracy"] == 1.0).all()


def test_perfect_code_random_erasure_matches_expectation():
    # P(a digit lost) = p², game succeeds iff neither digit is lost (or it is game 0)
    model = code_model()
    df = ev.run_testchannel(model, code_data())
    er = df[df["channel"] == "erasure"]
    expected = (1 - 0.25) ** 2
    for rec in er.to_dict("records"):
        k = rec["eval_batch_size"]
        mean = expected + (1 - expected) / k
        assert rec["accuracy"] == pytest.approx(mean, abs=4 * math.sqrt(0.25 / rec["n_games"]))
        assert rec["erased_fraction"] == pytest.approx(0.5, abs=0.03)


# ------------------------------------------------------------------ protocol pieces


def test_order_and_keys_follow_the_protocol():
    b = ev.eval_batches(50, 16, 42, 0, 2)
    assert b.shape == (6, 16)
    perm0 = np.asarray(
        jax.random.permutation(
            jax.random.fold_in(
                jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(42), 0), 0), 0
            ),
            50,
        )
    )
    assert b[:3].reshape(-1).tolist() == perm0[:48].tolist()
    assert len(set(b[3:].reshape(-1).tolist())) == 48
    assert not np.array_equal(b[:3], b[3:])
    assert np.array_equal(ev.eval_batches(50, 16, 42, 0, 2), b)
    assert not np.array_equal(ev.eval_batches(50, 16, 43, 0, 2), b)
    s = ev.Setting("testchannel", 16, "erasure", 0.25)
    h = s.hash()
    want = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(42), 0), 1 + h)
    assert np.array_equal(ev.setting_key(42, 0, h), want)
    with pytest.raises(ValueError, match="eval.batch_sizes"):
        ev.eval_batches(10, 16, 42, 0, 1)


def test_setting_counts_match_the_spec():
    cfg = configs.get_config("lg_rlrl", "imagenet")
    e = cfg.eval
    assert len(ev.channel_settings(e, 16)) == 7
    assert len(ev.message_settings(e, 16, T)) == 51
    assert len(ev.input_settings(e, 16)) == 8
    assert len(ev.topsim_settings(e, 16)) == 4
    assert [ev.topsim_games(e, k) for k in e.batch_sizes] == [10, 12, 51, 102, 81]


# ------------------------------------------------------------------ a real (random) model


@pytest.fixture(scope="module")
def random_model():
    # one K and one decoding: each (decoding, K) of an LSTM pair costs a compilation of
    # several seconds (the known-answer tests cover `greedy`)
    cfg = small_config(
        **{"eval.batch_sizes": (16,), "eval.topsim_ratios": (0.2,), "eval.decodings": ("sample",)}
    )
    nets = game.Nets(networks.make_speaker(cfg), networks.make_listener(cfg))
    x = jnp.zeros((8, 12), jnp.float32)
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    sp = nets.speaker.init(k1, x, k1)
    lp = nets.listener.init(k2, jnp.zeros((8, T), jnp.int32), x)
    return cfg, sp, lp


@pytest.fixture(scope="module")
def random_data():
    rng = np.random.default_rng(0)
    return ev.EvalData(
        "synthetic",
        rng.normal(size=(48, 12)).astype(np.float32),
        rng.integers(0, 2, size=(48, 5)).astype(bool),
    )


@pytest.fixture(scope="module")
def all_tables(random_model, random_data):
    cfg, sp, lp = random_model
    model = ev.build_model(cfg, sp, lp, 7)
    message = ev.run_testmessage(model, random_data)
    return {
        "channel": ev.run_testchannel(model, random_data),
        "message": message,
        "input": ev.run_testinput(model, random_data),
        "topsim": ev.run_testtopsim(model, random_data),
        "measures": ev.run_measures(model, random_data, message),
    }


@pytest.mark.parametrize("mode", ev.MODES)
def test_tables_have_every_column_and_unique_keys(all_tables, mode):
    df = all_tables[mode]
    assert list(df.columns) == list(ev.columns_for(mode))
    assert set(lang.IDENTIFYING_COLUMNS) <= set(df.columns)
    assert not df.duplicated(subset=list(ev.key_columns(mode))).any()
    assert (df["checkpoint_step"] == 7).all() and (df["unknown_token_policy"] == "alias").all()
    assert set(df["decoding"]) == {"sample"}
    assert (df["run_id"] == "lg_rl-debug-b8-p0.0-s0").all()


def test_table_sizes(all_tables):
    # one decoding and K: channel 3; message 1 + 3 + 3; input 2 views × 2 channels;
    # topsim 2 channels × 2 meanings
    assert len(all_tables["channel"]) == 3
    assert len(all_tables["message"]) == 7
    assert len(all_tables["input"]) == 4
    assert len(all_tables["topsim"]) == 2 * 2
    m = all_tables["measures"]
    assert set(m["measure"]) >= {
        "topsim",
        "position_entropy",
        "unique_message_ratio",
        "accuracy_erased_mean",
        "redundancy",
        "erasure_sensitivity",
        "effective_positions",
    }
    assert (m.loc[m["measure"] == "position_entropy", "value"] <= math.log2(V) + 1e-9).all()


def test_metric_values_are_sane(all_tables):
    for mode in ("channel", "message", "input", "topsim"):
        df = all_tables[mode]
        assert df["accuracy"].between(0, 1).all()
        assert (df["n_correct"] <= df["n_games"]).all()
        assert df["speaker_entropy"].between(0, math.log(V) + 1e-5).all()
        assert (df["fano_bound_tight"] <= df["fano_bound"] + 1e-12).all()
    ch = all_tables["channel"]
    assert (ch.loc[ch["channel"] == "identity", "erased_fraction"] == 0).all()
    assert (ch.loc[ch["channel"] == "substitution", "erased_fraction"] == 0).all()
    assert ch["masked_positions"].isna().all() and ch["listener_view"].isna().all()
    ts = all_tables["topsim"]
    assert set(ts["meaning"]) == {"inputs", "attributes"}
    assert (ts["message_stage"] == "post_channel").all()
    assert (ts.loc[ts["eval_batch_size"] == 16, "n_pairs_per_batch"] == 45).all()


def test_identity_row_matches_a_direct_game_with_protocol_keys(
    all_tables, random_model, random_data
):
    """Replay the identity setting batch by batch: order from `eval_batches`, key of batch i =
    fold_in(fold_in(fold_in(PRNGKey(42), 0), 1 + h), i), speaker key = its first split."""
    cfg, sp, lp = random_model
    model = ev.build_model(cfg, sp, lp, 0)
    row = all_tables["channel"].query("channel == 'identity'").iloc[0]
    setting = ev.Setting("testchannel", 16, "identity", 0.0)
    base = ev.setting_key(42, 0, setting.hash())
    correct, entropy = 0, 0.0
    for i, idx in enumerate(ev.eval_batches(48, 16, 42, 0, 1)):
        x = random_data.inputs[idx]
        k_spk = jax.random.split(jax.random.fold_in(base, i), 4)[0]
        spk = model.nets.speaker.apply(sp, x, k_spk, "sample")
        scores = model.nets.listener.apply(lp, spk.tokens, x).scores
        correct += int(np.sum(np.argmax(scores, axis=-1) == np.arange(16)))
        entropy += float(np.sum(losses.categorical_entropy(scores)))
    assert row["n_correct"] == correct
    assert row["listener_entropy"] == pytest.approx(entropy / row["n_games"], rel=1e-5)


def test_embed_policy_adds_a_row_and_is_recorded(random_model, random_data):
    cfg, sp, lp = random_model
    cfg = configs.from_json(configs.to_json(cfg))
    ev.apply_overrides(cfg, {"eval.unknown_token_policy": "embed"})
    model = ev.build_model(cfg, sp, lp, 0)
    table = model.listener_params[networks.EMBED_PATH]["embeddings"]
    assert table.shape[0] == V + 1
    np.testing.assert_array_equal(table[:V], lp[networks.EMBED_PATH]["embeddings"])
    # id V now reads its own row, unlike `alias` (id V → V−1)
    x = random_data.inputs[:4]
    tokens = jnp.full((4, T), V, jnp.int32)
    embed_scores = model.nets.listener.apply(model.listener_params, tokens, x).scores
    alias = ev.build_model(configs.from_json(configs.to_json(random_model[0])), sp, lp, 0)
    alias_scores = alias.nets.listener.apply(lp, tokens.at[:].set(V - 1), x).scores
    assert np.allclose(alias.nets.listener.apply(lp, tokens, x).scores, alias_scores)
    assert not np.allclose(embed_scores, alias_scores)
    assert ev.model_columns(model, random_data)["unknown_token_policy"] == "embed"
    with pytest.raises(KeyError, match="only eval"):
        ev.apply_overrides(cfg, {"batch_size": 4})


def test_write_table_round_trip(all_tables, tmp_path):
    out = tmp_path / "sub" / "testmessage.csv"
    csv, parquet = ev.write_table(all_tables["message"], out)
    assert csv.exists() and parquet.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]
    back = pd.read_csv(csv, dtype={"masked_positions": "string"})
    assert list(back.columns) == list(ev.columns_for("message"))
    assert len(back) == len(all_tables["message"])
    pq = pd.read_parquet(parquet)
    assert pq["masked_positions"].tolist() == all_tables["message"]["masked_positions"].tolist()
    with pytest.raises(ValueError, match="csv"):
        ev.write_table(all_tables["message"], tmp_path / "x.txt")


# ------------------------------------------------------------------ the command line


def load_cli():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "workflow" / "scripts" / "test.py"
    spec = importlib.util.spec_from_file_location("test_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_every_mode_on_a_random_checkpoint(random_model, random_data, tmp_path):
    from noisy_emcom import checkpoint

    cfg, sp, lp = random_model
    ckpt = tmp_path / "final.ckpt"
    checkpoint.save_checkpoint(
        ckpt, {"speaker": sp, "listener": lp, "step": 3, "config": configs.to_json(cfg)}
    )
    npz = tmp_path / "synthetic.npz"
    np.savez(npz, test=random_data.inputs, test_attributes=random_data.attributes)
    cli = load_cli()
    common = ["--checkpoint", str(ckpt), "--dataset", str(npz), "--config.eval.epochs=1"]
    for mode in ("message", "channel", "input", "topsim", "measures"):
        out = tmp_path / "tests" / f"{mode}.csv"
        extra = ["--message-results", str(tmp_path / "tests" / "message.csv")]
        argv = ["--mode", mode, "--out", str(out), *common, *(extra if mode == "measures" else [])]
        assert cli.main(argv) == 0
        df = pd.read_csv(out)
        assert list(df.columns) == list(ev.columns_for(mode))
        assert out.with_suffix(".parquet").exists()
        assert (df["dataset"] == "synthetic").all() and (df["checkpoint_step"] == 3).all()
        assert not df.duplicated(subset=list(ev.key_columns(mode))).any()
    # All modes in one call (as the pipeline runs them): the same tables as one call each.
    together = []
    for mode in ("channel", "message", "measures"):
        together += ["--mode", mode, "--out", str(tmp_path / "one_call" / f"{mode}.csv")]
    assert cli.main([*together, *common]) == 0
    for mode in ("channel", "message", "measures"):
        pd.testing.assert_frame_equal(
            pd.read_csv(tmp_path / "one_call" / f"{mode}.csv"),
            pd.read_csv(tmp_path / "tests" / f"{mode}.csv"),
        )
    with pytest.raises(SystemExit):  # one --out per --mode
        cli.main(["--mode", "channel", "--mode", "message", "--out", str(tmp_path / "x.csv"),
                  *common])  # fmt: skip
    with pytest.raises(SystemExit, match="only eval"):
        cli.main(
            [
                "--mode",
                "channel",
                "--out",
                str(tmp_path / "x.csv"),
                *common,
                "--config.batch_size=4",
            ]
        )
