#!/usr/bin/env python
"""Save and restore time of a training checkpoint: the current format (.npz + JSON tree) and
the former one (a pickle), at the paper's sizes (LG(RL), speaker LSTM 256, listener LSTM 512,
D = 2048, ImageNet preset) or `--small` ones.

    python bench/checkpoint_io.py [--repeat 5] [--small] [--dir /tmp]

The former format is rebuilt here only to time it: MAGIC | SHA-256 | pickle of the payload,
read back with pickle from the file this script has just written. Restore = read, check and
rebuild the training state (the new format checks every tree against a fresh template).
"""

import argparse
import hashlib
import pickle
import statistics
import tempfile
import time
from pathlib import Path

import jax

from noisy_emcom import checkpoint, configs, files, train


def old_save(path, payload):
    body = pickle.dumps(
        {"format_version": 1, **jax.device_get(payload)}, protocol=pickle.HIGHEST_PROTOCOL
    )
    files.atomic_write_bytes(path, b"NEMCKPT1" + hashlib.sha256(body).digest() + body)


def old_restore(path, template):
    data = Path(path).read_bytes()
    assert hashlib.sha256(data[40:]).digest() == data[8:40]
    payload = pickle.loads(data[40:])  # our own file, just written
    return train.TrainState(
        *(
            jax.tree_util.tree_unflatten(
                jax.tree_util.tree_structure(getattr(template, name)),
                [jax.numpy.asarray(x) for x in jax.tree_util.tree_leaves(payload[name])],
            )
            for name in ("speaker", "target", "listener", "speaker_opt", "listener_opt")
        ),
        jax.numpy.int32(payload["step"]),
    )


def new_restore(path, template):
    return train._restore(Path(path), checkpoint.load_checkpoint(path), template)


def timed(fn, repeat):
    """Median wall time of `repeat` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        tic = time.perf_counter()
        out = fn()
        jax.block_until_ready(out)
        times.append(time.perf_counter() - tic)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--small", action="store_true", help="small networks, D = 32 (a smoke test)")
    p.add_argument("--dir", default=None, help="folder for the files (default: a temp folder)")
    a = p.parse_args()
    if a.small:
        sizes = {"speaker.lstm_size": 16, "listener.lstm_size": 16, "listener.hidden": 16}
        cfg, dim = configs.get_config("lg_rlrl", "debug", sizes), 32
    else:
        cfg, dim = configs.get_config("lg_rlrl", "imagenet"), 2048
    state = train.init_state(cfg, train.make_nets(cfg), dim, train.root_keys(0)[0])
    n_params = sum(x.size for x in jax.tree_util.tree_leaves(state))
    rows = [{"step": 1000 * (i + 1), "accuracy": 0.5, "reward": 0.1} for i in range(100)]
    payload = train._payload(state, cfg, rows, train.Window({}, 0, 0.0))
    print(f"state: {n_params:,} numbers (speaker LSTM {cfg.speaker.lstm_size}, listener LSTM "
          f"{cfg.listener.lstm_size}, D = {dim}); median of {a.repeat}")  # fmt: skip
    with tempfile.TemporaryDirectory(dir=a.dir) as tmp:
        for name, save, restore in (
            ("old (pickle)", old_save, old_restore),
            ("new (npz+json)", checkpoint.save_checkpoint, new_restore),
        ):
            path = Path(tmp) / f"{name.split()[0]}.ckpt"
            t_save = timed(lambda save=save, path=path: save(path, payload), a.repeat)
            t_load = timed(lambda restore=restore, path=path: restore(path, state), a.repeat)
            size = path.stat().st_size / 2**20
            print(f"{name:15s} {size:8.1f} MiB  save {t_save * 1e3:8.1f} ms  "
                  f"restore {t_load * 1e3:8.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
