"""Fault injection on checkpoints and input files: damaged, foreign, crafted and wrong-type
checkpoints, a full disk, a kill while writing, stale temporary files, file modes, NaN, and
malformed feature tables. Each case checks the message and that no earlier output changed."""

import hashlib
import io
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import jax
import numpy as np
import optax
import pytest
from conftest import small_config
from faultkit import (
    ROOT,
    assert_same_tree,
    file_size_limited,
    load_script,
    run,
    script_env,
    snapshot,
    train_args,
)

from noisy_emcom import checkpoint, configs, train
from noisy_emcom.data import own
from noisy_emcom.synthetic import clustered_features

TABLE, _ = clustered_features(256, dim=16, n_clusters=32, seed=0)


class Evil:
    """Unpickling this creates the file `marker` (stands for any code a pickle can run)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def old_format_bomb(path, marker):
    """A former-format checkpoint (valid header and checksum) whose pickle creates `marker`."""
    body = pickle.dumps({"format_version": 1, "speaker": Evil(marker), "step": 1})
    path.write_bytes(b"NEMCKPT1" + hashlib.sha256(body).digest() + body)


def new_format_bomb(path, marker):
    """The current layout with a valid checksum, but an array member that is a pickle."""
    tree = {"format_version": 2, "payload": {"dict": [["x", {"array": "0", "scalar": False}]]}}
    buf = io.BytesIO()
    doc = np.frombuffer(json.dumps(tree).encode(), np.uint8)
    np.savez(buf, __tree__=doc, **{"0": np.array([Evil(marker)], dtype=object)})
    body = buf.getvalue()
    path.write_bytes(checkpoint.MAGIC + hashlib.sha256(body).digest() + body)


def small_cfg(**kw):
    schedule = {"training_steps": 8, "steps_per_call": 2, "log_every": 4, "checkpoint_every": 2}
    return small_config("lg_rlrl", **{**schedule, **kw})


def trained(tmp_path, name="r", stop_at_step=None, table=TABLE, **kw):
    return train.train(small_cfg(**kw), table, tmp_path / name, False, stop_at_step)


# --------------------------------------------------------------------------------------------
# Format: exact round trip, nothing executed
# --------------------------------------------------------------------------------------------


def test_round_trip_is_exact_for_params_optax_states_and_plain_values(tmp_path):
    params = {"lin": {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.zeros(3)}}
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-3)).init(params)
    payload = {
        "params": params,
        "opt": opt,
        "step": 7,
        "scalar": np.float64(0.25),
        "flags": np.array([True, False]),
        "log": [{"a": 1.5, "b": float("nan"), "c": float("inf")}],
        "names": ("x", "y"),
        "none": None,
    }
    path = tmp_path / "x.ckpt"
    checkpoint.save_checkpoint(path, payload)
    got = checkpoint.load_checkpoint(path)
    restored = checkpoint.restore_like(got["opt"], opt, "opt", path)
    assert_same_tree(restored, opt)
    assert got["params"]["lin"]["b"].dtype == np.float64
    assert got["step"] == 7 and type(got["scalar"]) is np.float64 and got["scalar"] == 0.25
    assert got["flags"].tolist() == [True, False] and got["names"] == ("x", "y")
    assert got["log"][0]["a"] == 1.5 and np.isnan(got["log"][0]["b"]) and got["none"] is None
    # The body is a plain .npz that numpy reads without pickle.
    with np.load(io.BytesIO(path.read_bytes()[40:]), allow_pickle=False) as npz:
        assert "__tree__" in npz.files


@pytest.mark.parametrize("bomb", [old_format_bomb, new_format_bomb])
def test_crafted_pickle_is_never_executed(tmp_path, bomb):
    marker = tmp_path / "pwned"
    path = tmp_path / "final.ckpt"
    bomb(path, marker)
    before = path.read_bytes()
    fragment = "old pickle-based checkpoint format" if bomb is old_format_bomb else "malformed"
    with pytest.raises(checkpoint.CheckpointError, match=fragment):
        checkpoint.load_checkpoint(path)
    # Every script that takes a checkpoint: a clear error, nothing executed, nothing written.
    assert (
        load_script("test").main(
            ["--mode", "channel", "--checkpoint", str(path), "--out", str(tmp_path / "t.csv")]
        )
        == 1
    )
    argv = ["--checkpoint", str(path), "--listener", str(path), "--out", str(tmp_path / "e.csv")]
    assert load_script("etl_test").main(argv) == 1
    run_dir = tmp_path / "run"
    (run_dir).mkdir()
    (run_dir / "final.ckpt").write_bytes(before)
    if bomb is old_format_bomb:  # the run is not retrained over the old checkpoint
        with pytest.raises(checkpoint.OldFormatError, match="retrain, or convert"):
            trained(tmp_path, "run")
    else:  # the only checkpoint is unusable: stop rather than train afresh over it
        with pytest.warns(UserWarning), pytest.raises(checkpoint.CheckpointError, match="move"):
            trained(tmp_path, "run")
    assert not marker.exists()
    assert path.read_bytes() == before and snapshot(run_dir) == {"final.ckpt": before}
    assert not (tmp_path / "t.csv").exists() and not (tmp_path / "e.csv").exists()


# --------------------------------------------------------------------------------------------
# Damaged, foreign and wrong-type checkpoints
# --------------------------------------------------------------------------------------------


def _zip_of_other_content(data):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "not a checkpoint")
    return buf.getvalue()


DAMAGE = {
    "truncated": (lambda d: d[: len(d) // 2], "checksum mismatch"),
    "bit-flipped": (lambda d: d[:-100] + bytes([d[-100] ^ 1]) + d[-99:], "checksum mismatch"),
    "emptied": (lambda d: b"", "bad header"),
    "header only": (lambda d: d[:40], "checksum mismatch"),
    "random bytes": (lambda d: np.random.default_rng(0).bytes(4096), "bad header"),
    "zip of other content": (_zip_of_other_content, "bad header"),
    "npz without header": (lambda d: d[40:], "bad header"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_or_foreign_newest_checkpoint_falls_back_to_the_previous(tmp_path, damage):
    cfg = small_cfg()
    ref = train.train(cfg, TABLE, tmp_path / "ref", progress=False)
    train.train(cfg, TABLE, tmp_path / "r", progress=False, stop_at_step=6)
    newest = checkpoint.periodic_path(tmp_path / "r", 6)
    spoil, fragment = DAMAGE[damage]
    newest.write_bytes(spoil(newest.read_bytes()))
    with pytest.raises(checkpoint.CheckpointError, match=fragment):
        checkpoint.load_checkpoint(newest)
    previous = checkpoint.periodic_path(tmp_path / "r", 4).read_bytes()
    with pytest.warns(UserWarning, match=fragment):
        res = train.train(cfg, TABLE, tmp_path / "r", progress=False)
    assert res.finished and res.resumed_from == 4
    assert_same_tree(ref.state, res.state)
    assert not checkpoint.periodic_path(tmp_path / "r", 4).exists() or (
        checkpoint.periodic_path(tmp_path / "r", 4).read_bytes() == previous
    )


WRONG = {  # edit of a valid checkpoint, message, whether test.py reads the edited part
    "listener of other shapes": (
        lambda p: p["listener"]["listener/candidate_proj"].update(w=np.zeros((3, 3), np.float32)),
        r"listener\['listener/candidate_proj'\]\['w'\] is float32\[3, 3\]",
        True,
    ),
    "optimiser state of another structure": (
        lambda p: p.update(speaker_opt=[1, 2]), "speaker_opt has another structure", False
    ),
    "float64 parameters": (
        lambda p: p.update(target=jax.tree_util.tree_map(lambda x: x.astype(float), p["target"])),
        "target.* is float64",
        False,
    ),
    "step of another type": (lambda p: p.update(step="six"), "'step' = 'six'", True),
    "no config": (lambda p: p.pop("config"), "no field 'config'", True),
    "empty payload": (lambda p: p.clear(), "no field", True),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(WRONG))
def test_wrong_type_checkpoint_falls_back_and_is_refused_by_the_scripts(tmp_path, case, capsys):
    edit, fragment, read_by_tests = WRONG[case]
    trained(tmp_path, stop_at_step=6)
    newest = checkpoint.periodic_path(tmp_path / "r", 6)
    payload = checkpoint.load_checkpoint(newest)
    edit(payload)
    checkpoint.save_checkpoint(newest, payload)  # valid format, checksum and all
    if read_by_tests:
        out = tmp_path / "t.csv"
        argv = ["--mode", "channel", "--checkpoint", str(newest), "--out", str(out)]
        assert load_script("test").main(argv) == 1
        assert re.search(fragment, capsys.readouterr().err)
        assert not out.exists()
    with pytest.warns(UserWarning, match=fragment):
        res = trained(tmp_path)
    assert res.finished and res.resumed_from == 4


def test_feature_width_other_than_the_checkpoints_is_refused_and_nothing_lost(tmp_path):
    trained(tmp_path, stop_at_step=4)
    before = snapshot(tmp_path / "r")
    with pytest.warns(UserWarning), pytest.raises(checkpoint.CheckpointError, match=r"\[8, "):
        trained(tmp_path, table=TABLE[:, :8].copy())
    assert snapshot(tmp_path / "r") == before


# --------------------------------------------------------------------------------------------
# Writes: full disk, kill during a write, stale temporary files, modes
# --------------------------------------------------------------------------------------------


WRITER = textwrap.dedent(
    """
    import sys, numpy as np
    from noisy_emcom import checkpoint
    try:
        checkpoint.save_checkpoint(sys.argv[1], {"w": np.ones(int(sys.argv[2]), np.float32)})
    except OSError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    """
)


def test_full_disk_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "checkpoints" / "step_000000002.ckpt"
    checkpoint.save_checkpoint(path, {"w": np.zeros(10, np.float32)})
    before = path.read_bytes()
    res = subprocess.run(
        file_size_limited(1 << 20, ["-c", WRITER, path, 1 << 20]),
        capture_output=True,
        text=True,
        env=script_env(),
    )
    assert res.returncode == 1
    assert f"cannot write {path}: File too large" in res.stderr
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary left


@pytest.mark.slow
def test_full_disk_during_training_stops_with_a_clear_error_then_resumes(tmp_path):
    args = train_args(tmp_path / "r", steps=8, per_call=2, log_every=2, ckpt_every=2)
    np.save(tmp_path / "table.npy", TABLE)
    overrides, rest = configs.split_overrides(args)
    # the config train.py makes of --features (the run named after the table, its hash kept)
    cfg = own.train_config(rest[0].partition("=")[2], overrides, str(tmp_path / "table.npy"))
    ref = train.train(cfg, TABLE, tmp_path / "ref", progress=False)
    train.train(cfg, TABLE, tmp_path / "r", progress=False, stop_at_step=4)
    step4 = checkpoint.periodic_path(tmp_path / "r", 4)
    before = {k: v for k, v in snapshot(tmp_path / "r").items() if k.endswith(".ckpt")}
    env = script_env(JAX_COMPILATION_CACHE_DIR=None)  # no cache files under the size limit
    res = run(
        "train",
        [*args, "--features", tmp_path / "table.npy"],
        env=env,
        limit=step4.stat().st_size,
    )
    assert res.returncode == 1, res.stderr[-2000:]
    assert "error: cannot write" in res.stderr
    assert "step_000000006.ckpt: File too large" in res.stderr
    after = snapshot(tmp_path / "r")
    assert {k: v for k, v in after.items() if k.endswith(".ckpt")} == before
    assert not [k for k in after if k.endswith(".tmp")]
    done = train.train(cfg, TABLE, tmp_path / "r", progress=False)
    assert done.resumed_from == 4
    assert_same_tree(ref.state, done.state)


# The writer is held inside its write (fsync never returns) so that the kill lands there.
STALLED_WRITER = "import os, time\nos.fsync = lambda fd: time.sleep(600)\n" + WRITER


def test_kill_while_writing_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "final.ckpt"
    checkpoint.save_checkpoint(path, {"w": np.zeros(10, np.float32)})
    before = path.read_bytes()
    proc = subprocess.Popen(
        [sys.executable, "-c", STALLED_WRITER, str(path), str(1 << 20)], env=script_env()
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".final.ckpt.*.tmp")):
        assert proc.poll() is None and time.monotonic() < deadline, "no temporary file"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert path.read_bytes() == before
    stale = list(tmp_path.glob(".final.ckpt.*.tmp"))
    assert stale  # left by the kill
    checkpoint.save_checkpoint(path, {"w": np.ones(3, np.float32)})  # the next save cleans up
    assert not list(tmp_path.glob(".*.tmp"))
    assert checkpoint.load_checkpoint(path)["w"].tolist() == [1, 1, 1]


def test_stale_temporary_files_are_removed_on_start_and_save(tmp_path):
    run_dir = tmp_path / "r"
    (run_dir / "checkpoints").mkdir(parents=True)
    dead = 4194305  # above Linux's largest pid: no such process
    stale = [
        run_dir / "checkpoints" / f".step_000000004.ckpt.{dead}.x1y2.tmp",
        run_dir / ".final.ckpt.k3j4l5.tmp",  # an older name without the writer's pid
        run_dir / f".config.json.{dead}.abcd.tmp",
    ]
    live = run_dir / "checkpoints" / f".step_000000006.ckpt.{os.getpid()}.zz.tmp"
    for p in [*stale, live]:
        p.write_bytes(b"partial")
    trained(tmp_path, stop_at_step=2)
    assert not any(p.exists() for p in stale)
    assert live.exists()  # its writer (this process) still runs


def test_files_get_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        trained(tmp_path, stop_at_step=2)
        os.umask(0o027)
        checkpoint.save_checkpoint(tmp_path / "g.ckpt", {"a": np.zeros(1)})
    finally:
        os.umask(old)
    for name in ("config.json", "train_log.csv", "checkpoints/step_000000002.ckpt"):
        assert (tmp_path / "r" / name).stat().st_mode & 0o777 == 0o644, name
    assert (tmp_path / "g.ckpt").stat().st_mode & 0o777 == 0o640


# --------------------------------------------------------------------------------------------
# NaN during training
# --------------------------------------------------------------------------------------------


def test_nan_during_training_stops_naming_the_step_and_keeps_the_last_checkpoint(tmp_path):
    trained(tmp_path, stop_at_step=4)
    # Inject: finite parameters 1e20 times too large, saved as a valid checkpoint.
    newest = checkpoint.periodic_path(tmp_path / "r", 4)
    payload = checkpoint.load_checkpoint(newest)
    for name in ("speaker", "target", "listener"):
        payload[name] = jax.tree_util.tree_map(lambda x: x * np.float32(1e20), payload[name])
    checkpoint.save_checkpoint(newest, payload)
    before = snapshot(tmp_path / "r")
    with pytest.raises(FloatingPointError, match=r"non-finite \w+ at step [56] of .*the last one"):
        trained(tmp_path)
    after = snapshot(tmp_path / "r")
    assert {k: v for k, v in after.items() if k.endswith(".ckpt")} == {
        k: v for k, v in before.items() if k.endswith(".ckpt")
    }
    assert not checkpoint.final_path(tmp_path / "r").exists()


def test_non_finite_parameters_are_never_saved(tmp_path):
    path = tmp_path / "final.ckpt"
    checkpoint.save_checkpoint(path, {"p": {"w": np.ones(3, np.float32)}})
    before = path.read_bytes()
    with pytest.raises(FloatingPointError, match=r"refusing to write .*/p/w has non-finite"):
        checkpoint.save_checkpoint(path, {"p": {"w": np.array([1, np.nan, 2], np.float32)}})
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["final.ckpt"]


# --------------------------------------------------------------------------------------------
# Feature tables (train.py --features) and the run folder
# --------------------------------------------------------------------------------------------


def _npz(**arrays):
    def write(path):
        with path.open("wb") as f:
            np.savez(f, **arrays)

    return write


def _npy(array, allow_pickle=False):
    def write(path):
        np.save(path, array, allow_pickle=allow_pickle)

    return write


def _raw(data):
    def write(path):
        path.write_bytes(data)

    return write


def _with(value):
    t = TABLE.copy()
    t[3, 2] = value
    return t


def _with64(value):
    t = TABLE.astype(np.float64)
    t[3, 2] = value  # finite in float64, infinite as float32
    return t


FEATURES = {
    "complex": ("npy", _npy(TABLE.astype(np.complex64)), "has dtype complex64"),
    "object npy": ("npy", _npy(TABLE.astype(object), True), r"pickled \(object\) data"),
    "object npz": ("npz", _npz(train=TABLE.astype(object)), "array 'train' holds pickled"),
    "strings": ("npz", _npz(train=TABLE.astype(str)), r"'train' \(field 'logit'\) has dtype <U"),
    "bytes": ("npz", _npz(train=TABLE.astype("S8")), r"has dtype \|S8"),
    "bool": ("npz", _npz(train=TABLE > 0), "has dtype bool"),
    "1-D": ("npy", _npy(TABLE[:, 0].copy()), r"has shape \(256,\)"),
    "3-D": ("npz", _npz(train=TABLE.reshape(16, 16, 16)), r"has shape \(16, 16, 16\)"),
    "empty": ("npz", _npz(train=TABLE[:0]), "of split 'train' has no rows"),
    "no width": ("npy", _npy(TABLE[:, :0].copy()), "no features"),
    "NaN": ("npz", _npz(train=_with(np.nan)), r"array 'train' .*NaN or infinite .*row 3"),
    "inf": ("npy", _npy(_with(-np.inf)), r"the table .*NaN or infinite values \(first in row 3"),
    "float64 overflow": ("npy", _npy(_with64(1e300)), "NaN or infinite"),
    "npz not a zip": ("npz", _raw(b"PK but not really a zip"), "not a valid .npz file"),
    "npy not an npy": ("npy", _raw(b"\x80\x04K\x01."), "not a valid .npy file"),
    "npz without train": ("npz", _npz(test=TABLE), "no array 'train_logit' or 'train'"),
    "missing": ("npz", None, "dataset file not found"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(FEATURES))
def test_malformed_feature_table_is_refused_naming_file_and_key(tmp_path, case, capsys):
    suffix, write, fragment = FEATURES[case]
    path = tmp_path / f"table.{suffix}"
    if write:
        write(path)
    run_dir = tmp_path / "run"
    rc = load_script("train").main([*train_args(run_dir), "--features", str(path)])
    err = capsys.readouterr().err
    assert rc == 1
    assert str(path) in err
    assert re.search(fragment, err), err
    assert not run_dir.exists()


def test_int_table_is_accepted(tmp_path):
    from noisy_emcom.data import loader

    np.save(tmp_path / "t.npy", np.arange(12, dtype=np.int16).reshape(4, 3))
    got = loader.load_split(str(tmp_path / "t.npy"), "train", "")["logit"]
    assert got.dtype == np.float32 and got[3, 2] == 11


def test_empty_run_dir_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        load_script("train").main(train_args(""))
    assert exit_.value.code == 2 and "--run-dir is empty" in capsys.readouterr().err
    with pytest.raises(ValueError, match="run directory is empty"):
        train.train(small_cfg(), TABLE, "", progress=False)
    assert os.listdir(tmp_path) == []


def test_bench_script_runs(tmp_path):
    res = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "checkpoint_io.py"), "--small", "--repeat", "1"],
        capture_output=True,
        text=True,
        env=script_env(),
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "new" in res.stdout and "old" in res.stdout


def test_old_checkpoint_is_converted_only_when_trusted(tmp_path, capsys):
    cfg = small_cfg()
    ref = train.train(cfg, TABLE, tmp_path / "ref", progress=False)
    train.train(cfg, TABLE, tmp_path / "r", progress=False, stop_at_step=4)
    newest = checkpoint.periodic_path(tmp_path / "r", 4)
    payload = checkpoint.load_checkpoint(newest)
    state = train._restore(newest, payload, ref.state)  # NamedTuples, as the old files held
    old = {**payload, "format_version": 1, "speaker_opt": state.speaker_opt}
    old["listener_opt"] = state.listener_opt
    body = pickle.dumps(jax.device_get(old))
    newest.write_bytes(b"NEMCKPT1" + hashlib.sha256(body).digest() + body)
    convert = load_script("convert_checkpoint").main
    with pytest.raises(SystemExit):
        convert([str(newest)])
    assert "--trusted" in capsys.readouterr().err
    assert newest.read_bytes()[:8] == b"NEMCKPT1"
    assert convert(["--trusted", str(newest)]) == 0
    res = train.train(cfg, TABLE, tmp_path / "r", progress=False)
    assert res.resumed_from == 4
    assert_same_tree(ref.state, res.state)
