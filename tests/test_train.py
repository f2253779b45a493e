"""Training loop: data order, determinism, checkpoints, resume, config errors (docs/science.md)."""

import jax
import numpy as np
import pytest
from conftest import small_config
from hypothesis import given, settings
from hypothesis import strategies as st

from noisy_emcom import checkpoint, configs, train
from noisy_emcom.synthetic import clustered_features

TABLE, _ = clustered_features(256, dim=16, n_clusters=32, seed=0)


def leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([(7, 3), (10, 10), (12, 5)]), st.integers(0, 30))
def test_batches_walk_epoch_permutations(sizes, start):
    """The stream is perm(e=0) ++ perm(e=1) ++ …; step s takes elements [sB, (s+1)B)."""
    n, batch = sizes
    k_data = jax.random.PRNGKey(5)
    steps = 6
    fn = train.make_chunk_indices(batch, n, steps)
    _, idx = fn(train.start_cursor(k_data, start, batch, n), k_data)
    last_epoch = ((start + steps) * batch) // n + 1
    stream = np.concatenate(
        [
            np.asarray(jax.random.permutation(jax.random.fold_in(k_data, e), n))
            for e in range(last_epoch + 1)
        ]
    )
    expected = stream[start * batch : (start + steps) * batch].reshape(steps, batch)
    np.testing.assert_array_equal(np.asarray(idx), expected)


def run(tmp_path, name, cfg, **kw):
    return train.train(cfg, TABLE, tmp_path / name, progress=False, **kw)


@pytest.mark.parametrize(
    "preset,sweep", [("lg_rlss", "debug"), ("lg_rlrl", "debug"), ("nlg_rlrl", "debug_0.5")]
)
def test_resume_reproduces_the_uninterrupted_run(tmp_path, preset, sweep):
    cfg = small_config(
        preset, sweep, training_steps=8, steps_per_call=2, log_every=2, checkpoint_every=4
    )
    full = run(tmp_path, "full", cfg)
    assert full.finished
    part = run(tmp_path, "part", cfg, stop_at_step=6)  # stops with a checkpoint at step 6
    assert not part.finished and int(part.state.step) == 6
    assert not checkpoint.final_path(tmp_path / "part").exists()
    resumed = run(tmp_path, "part", cfg)
    assert resumed.finished and resumed.resumed_from == 6
    for a, b in zip(leaves(full.state), leaves(resumed.state), strict=True):
        np.testing.assert_array_equal(a, b)  # bitwise on CPU
    # The resumed log has one row per logging window, none duplicated.
    log = (tmp_path / "part" / "train_log.csv").read_text().splitlines()
    assert [int(r.split(",")[0]) for r in log[1:]] == [2, 4, 6, 8]
    # Two periodic checkpoints kept plus the final one.
    kept = sorted(p.name for p in (tmp_path / "part" / "checkpoints").glob("*.ckpt"))
    assert kept == ["step_000000004.ckpt", "step_000000006.ckpt"]
    # A deleted log is rebuilt from the checkpoint; a finished run is not trained again.
    (tmp_path / "part" / "train_log.csv").unlink()
    again = run(tmp_path, "part", cfg)
    assert again.resumed_from == 8
    assert (tmp_path / "part" / "train_log.csv").read_text().splitlines() == log


def test_same_seed_same_result_other_seed_differs(tmp_path):
    cfg = small_config(
        "lg_rlrl", training_steps=4, steps_per_call=2, log_every=2, checkpoint_every=4
    )
    a, b = run(tmp_path, "a", cfg), run(tmp_path, "b", cfg)
    for x, y in zip(leaves(a.state), leaves(b.state), strict=True):
        np.testing.assert_array_equal(x, y)
    cfg.random_seed = 1
    c = run(tmp_path, "c", cfg)
    assert not all(
        np.array_equal(x, y) for x, y in zip(leaves(a.state), leaves(c.state), strict=True)
    )


def test_corrupt_checkpoint_is_skipped_and_log_truncated(tmp_path):
    cfg = small_config(
        "lg_rlrl", training_steps=6, steps_per_call=2, log_every=2, checkpoint_every=2
    )
    run(tmp_path, "r", cfg, stop_at_step=4)
    newest = checkpoint.periodic_path(tmp_path / "r", 4)
    newest.write_bytes(newest.read_bytes()[:-10])  # truncated file
    with pytest.raises(checkpoint.CheckpointError, match="checksum"):
        checkpoint.load_checkpoint(newest)
    with pytest.warns(UserWarning, match="checksum"):
        res = run(tmp_path, "r", cfg)
    assert res.resumed_from == 2 and res.finished
    steps = [
        int(r.split(",")[0])
        for r in (tmp_path / "r" / "train_log.csv").read_text().splitlines()[1:]
    ]
    assert steps == [2, 4, 6]


def test_checkpoint_of_another_config_is_refused(tmp_path):
    cfg = small_config(
        "lg_rlrl", training_steps=4, steps_per_call=2, log_every=2, checkpoint_every=2
    )
    run(tmp_path, "r", cfg, stop_at_step=2)
    other = small_config(
        "lg_rlrl", training_steps=4, steps_per_call=2, log_every=2, checkpoint_every=2,
        speaker__optimizer__learning_rate=0.5,
    )  # fmt: skip
    with pytest.raises(ValueError, match="speaker.optimizer.learning_rate"):
        run(tmp_path, "r", other)
    assert checkpoint.periodic_path(tmp_path / "r", 2).exists()  # nothing lost


def test_checkpoint_holds_everything_needed(tmp_path):
    cfg = small_config(
        "nlg_rlrl",
        "debug_0.25",
        training_steps=2,
        steps_per_call=2,
        log_every=2,
        checkpoint_every=2,
    )
    run(tmp_path, "r", cfg)
    payload = checkpoint.load_checkpoint(checkpoint.final_path(tmp_path / "r"))
    assert {
        "speaker",
        "target",
        "listener",
        "speaker_opt",
        "listener_opt",
        "step",
        "config",
        "window",
    } <= set(payload)
    saved, speaker, listener, step = checkpoint.load_model(checkpoint.final_path(tmp_path / "r"))
    assert step == 2 and configs.run_id(saved) == "nlg-debug-b8-p0.25-s0"
    assert saved.listener.vocab_size == 21 and saved.eval.batch_sizes == (8,)


def test_bad_schedule_and_config_are_refused(tmp_path):
    with pytest.raises(ValueError, match="log_every"):
        train.check_schedule(
            small_config("lg_rlrl", training_steps=10, steps_per_call=5, log_every=3)
        )
    with pytest.raises(ValueError, match=r"p_max in \[0,1\)"):
        configs.get_config("nlg_rlrl", "shapes_logits_1.5")
    with pytest.raises(ValueError, match="p_max"):
        configs.get_config("nlg_rlrl", "shapes_logits_0.5", {"channel.p_max": 1.0})
    with pytest.raises(KeyError, match="no_such"):
        configs.get_config("lg_rlrl", "imagenet", {"no_such.field": 1})
    with pytest.raises(ValueError, match="unknown dataset"):
        configs.get_config("lg_rlrl", "mnist")
    with pytest.raises(ValueError, match="batch_size"):
        train.train(small_config("lg_rlrl", batch_size=512), TABLE, tmp_path / "x", progress=False)
    bad = TABLE.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        train.train(small_config("lg_rlrl"), bad, tmp_path / "y", progress=False)


def test_config_overrides_resolve_derived_values():
    cfg, rest = configs.parse_cli(
        [
            "--config=src/noisy_emcom/configs/nlg_rlrl_config.py:imagenet_0.5",
            "--config.batch_size=64",
            "--out",
            "x",
        ]
    )
    assert (
        cfg.listener.value_hidden == (16, 4) and cfg.channel.p_max == 0.5 and rest == ["--out", "x"]
    )
    assert configs.get_config("lg_rlss", "imagenet").listener.value_hidden == (256, 64)
    assert configs.run_id(cfg) == "nlg-imagenet-b64-p0.5-s0"
    assert configs.from_json(configs.to_json(cfg)) == cfg


def test_streaming_source_trains_exactly_like_the_device_table(tmp_path):
    """Host-gathered batches (tables larger than the device) follow the same order."""
    from noisy_emcom.data import loader

    path = tmp_path / "table.npy"
    np.save(path, TABLE)
    source = loader.open_stream(str(path), "train", None)
    assert (source.num_examples, source.feature_dim) == TABLE.shape
    cfg = small_config(
        "nlg_rlrl", "debug_0.5", training_steps=4, steps_per_call=2, log_every=2, checkpoint_every=4
    )
    on_device = run(tmp_path, "device", cfg)
    streamed = train.train(cfg, source, tmp_path / "stream", progress=False)
    for a, b in zip(leaves(on_device.state), leaves(streamed.state), strict=True):
        np.testing.assert_array_equal(a, b)


def test_original_target_speaker_switch():
    """speaker.target = original: an independently initialised target that samples its own
    tokens (docs/differences.md D2); copy (default): an exact copy, forced on the online tokens."""
    cfg = small_config("lg_rlrl")
    nets = train.make_nets(cfg)
    k_init, _, k_train = train.root_keys(0)
    copy = train.init_state(cfg, nets, TABLE.shape[1], k_init)
    for x, y in zip(leaves(copy.speaker), leaves(copy.target), strict=True):
        np.testing.assert_array_equal(x, y)
    original_cfg = small_config("lg_rlrl", **{"speaker.target": "original"})
    original = train.init_state(original_cfg, nets, TABLE.shape[1], k_init)
    for x, y in zip(leaves(copy.speaker), leaves(original.speaker), strict=True):
        np.testing.assert_array_equal(x, y)  # the online networks are unchanged
    random_leaves = [
        (x, y)
        for x, y in zip(leaves(original.speaker), leaves(original.target), strict=True)
        if np.std(x) > 0  # weights; biases start at zero in both
    ]
    assert random_leaves and not any(np.array_equal(x, y) for x, y in random_leaves)
    # A target equal to the online speaker samples the online tokens (same key): KL 0 either
    # way. An independent target's own tokens differ, so its KL is not the forced one.
    x = jax.numpy.asarray(TABLE[: cfg.batch_size])
    kl = {}
    for state_name, state in (("equal", copy), ("independent", original)):
        for name, c in (("copy", cfg), ("original", original_cfg)):
            _, stats = train.make_train_step(c, nets)(state, x, k_train)
            kl[state_name, name] = float(stats["speaker_kl_loss"])
    assert kl["equal", "copy"] == kl["equal", "original"] == 0.0
    assert kl["independent", "copy"] > 1e-6 and kl["independent", "original"] > 1e-6
    assert kl["independent", "copy"] != kl["independent", "original"]
    with pytest.raises(configs.ConfigError, match="speaker.target"):
        small_config("lg_rlrl", **{"speaker.target": "other"})


def test_stop_at_a_step_already_reached_returns_at_once(tmp_path):
    cfg = small_config(
        "lg_rlrl", training_steps=8, steps_per_call=2, log_every=2, checkpoint_every=8
    )
    first = train.train(cfg, TABLE, tmp_path / "r", progress=False, stop_at_step=4)
    again = train.train(cfg, TABLE, tmp_path / "r", progress=False, stop_at_step=4)
    assert int(first.state.step) == int(again.state.step) == 4 and not again.finished
    assert again.resumed_from == 4
    for x, y in zip(leaves(first.state), leaves(again.state), strict=True):
        np.testing.assert_array_equal(x, y)


def test_on_dispatch_sees_every_dispatch_and_changes_nothing(tmp_path):
    cfg = small_config(
        "lg_rlrl", training_steps=8, steps_per_call=2, log_every=2, checkpoint_every=4
    )
    seen = []

    def record(step, state):
        seen.append((step, leaves(state.speaker)))

    watched = train.train(cfg, TABLE, tmp_path / "w", progress=False, on_dispatch=record)
    plain = train.train(cfg, TABLE, tmp_path / "p", progress=False)
    assert [s for s, _ in seen] == [2, 4, 6, 8]
    for x, y in zip(leaves(watched.state), leaves(plain.state), strict=True):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(seen[-1][1], leaves(plain.state.speaker), strict=True):
        np.testing.assert_array_equal(x, y)
