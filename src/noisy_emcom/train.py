"""Training: one jitted update, `steps_per_call` updates per dispatch in `lax.scan`, batches
gathered on the device from a resident feature table, checkpoints and resume (docs/science.md).

Randomness (docs/science.md#randomness-and-data-order): root = PRNGKey(seed);
(k_init, k_data, k_train) = split(root, 3); epoch e order = permutation(fold_in(k_data, e), N);
step s key = fold_in(k_train, s). Every random quantity of step s is a function of (seed, s), so
a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import haiku as hk
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from tqdm.auto import tqdm

from noisy_emcom import channels, checkpoint, configs, files, networks, xla
from noisy_emcom.game import Nets, make_loss_fn
from noisy_emcom.progress import Progress

LOG_COLUMNS = (
    "step", "channel_p", "erased_fraction", "accuracy", "greedy_accuracy", "reward",
    "speaker_policy_loss", "speaker_entropy_loss", "speaker_value_loss", "speaker_kl_loss",
    "speaker_entropy", "speaker_value", "listener_loss", "listener_policy_loss",
    "listener_value_loss", "listener_entropy_loss", "listener_entropy", "listener_value",
    "steps_per_second",
)  # fmt: skip
# Statistics that must stay finite in every game (the others are NaN by design for LG(S)).
ALWAYS_FINITE = ("speaker_policy_loss", "speaker_value_loss", "speaker_kl_loss", "listener_loss")


class TrainState(NamedTuple):
    speaker: hk.Params
    target: hk.Params
    listener: hk.Params
    speaker_opt: optax.OptState
    listener_opt: optax.OptState
    step: jax.Array  # int32 scalar: number of updates done


class Cursor(NamedTuple):
    """Position in the endless stream of epoch permutations (docs/science.md)."""

    epoch: jax.Array  # int32, epoch of the next batch's first element
    pos: jax.Array  # int32, offset of that element in the epoch
    perm: jax.Array  # [N] int32, permutation of `epoch`
    next_perm: jax.Array  # [N] int32, permutation of `epoch + 1`


class FeatureSource(Protocol):
    """Random-access table too large for the device (host streaming path)."""

    num_examples: int
    feature_dim: int

    def gather(self, indices: np.ndarray) -> np.ndarray: ...


def make_nets(cfg: ml_collections.ConfigDict) -> Nets:
    return Nets(networks.make_speaker(cfg), networks.make_listener(cfg))


def make_optimizer(ocfg: ml_collections.ConfigDict) -> optax.GradientTransformation:
    if ocfg.name != "adam":
        raise ValueError(f"optimizer.name must be 'adam', got {ocfg.name!r}")
    return optax.adam(ocfg.learning_rate, b1=ocfg.b1, b2=ocfg.b2, eps=ocfg.eps)


def root_keys(seed: int):
    """(k_init, k_data, k_train) = split(PRNGKey(seed), 3)."""
    return tuple(jax.random.split(jax.random.PRNGKey(seed), 3))


def _init_fn(cfg: ml_collections.ConfigDict, nets: Nets, feature_dim: int, value=None):
    value = cfg.listener.type == "rl" if value is None else value

    def init(k_init):
        k_spk, k_lst = jax.random.split(k_init)
        x = jnp.zeros((cfg.batch_size, feature_dim), jnp.float32)
        tokens = jnp.zeros((cfg.batch_size, cfg.length), jnp.int32)
        speaker = nets.speaker.init(k_spk, x, k_spk)
        listener = nets.listener.init(k_lst, tokens, x, compute_value=value)
        if cfg.speaker.get("target", "copy") == "original":  # independent initialisation
            k_tgt = jax.random.fold_in(k_spk, 1)
            target = nets.speaker.init(k_tgt, x, k_tgt)
        else:
            target = jax.tree_util.tree_map(jnp.copy, speaker)
        return TrainState(
            speaker=speaker,
            target=target,
            listener=listener,
            speaker_opt=make_optimizer(cfg.speaker.optimizer).init(speaker),
            listener_opt=make_optimizer(cfg.listener.optimizer).init(listener),
            step=jnp.zeros((), jnp.int32),
        )

    return init


def init_state(cfg: ml_collections.ConfigDict, nets: Nets, feature_dim: int, k_init) -> TrainState:
    """Speaker and listener from k_init; the target speaker is an exact copy, or under
    `speaker.target = original` initialised from fold_in(k_speaker, 1) (docs/science.md).

    One computation compiled with little optimisation (`xla.run_once`).
    """
    return xla.run_once(_init_fn(cfg, nets, feature_dim), k_init)


def param_shapes(cfg: ml_collections.ConfigDict, feature_dim: int, value: bool | None = None):
    """(speaker, listener) parameter shapes and dtypes of `cfg` (traced, nothing computed);
    `value`: whether the listener has its value head (default: as training builds it)."""
    init = _init_fn(cfg, make_nets(cfg), feature_dim, value)
    state = jax.eval_shape(init, jax.random.PRNGKey(0))
    return state.speaker, state.listener


def ema_update(target: hk.Params, online: hk.Params, decay: float) -> hk.Params:
    """θ_tgt ← decay·θ_tgt + (1 − decay)·θ_online."""
    return jax.tree_util.tree_map(lambda t, o: decay * t + (1.0 - decay) * o, target, online)


def make_train_step(cfg: ml_collections.ConfigDict, nets: Nets):
    """step(state, x[B,D], key) → (state, stats): one gradient of J, two Adams, the EMA."""
    loss = make_loss_fn(cfg, nets)
    opt_spk = make_optimizer(cfg.speaker.optimizer)
    opt_lst = make_optimizer(cfg.listener.optimizer)
    erasing = cfg.channel.type == "erasure"

    def step(state: TrainState, x, key):
        if erasing:
            p = channels.erasure_schedule(
                state.step, cfg.channel.p_max, cfg.training_steps, cfg.channel.ramp_fraction
            )
        else:
            p = jnp.float32(0.0)
        (g_spk, g_lst), stats = jax.grad(loss, has_aux=True)(
            (state.speaker, state.listener), state.target, x, key, p
        )
        upd, spk_opt = opt_spk.update(g_spk, state.speaker_opt, state.speaker)
        speaker = optax.apply_updates(state.speaker, upd)
        upd, lst_opt = opt_lst.update(g_lst, state.listener_opt, state.listener)
        listener = optax.apply_updates(state.listener, upd)
        target = ema_update(state.target, speaker, cfg.speaker.ema)
        return TrainState(speaker, target, listener, spk_opt, lst_opt, state.step + 1), stats

    return step


def start_cursor(k_data, step: int, batch: int, n: int) -> Cursor:
    """Cursor of training step `step` (host integers, no overflow)."""
    epoch, pos = divmod(step * batch, n)

    def perms(k_data, epoch):
        return [
            jax.random.permutation(jax.random.fold_in(k_data, e), n).astype(jnp.int32)
            for e in (epoch, epoch + 1)
        ]

    this, following = xla.run_once(perms, k_data, jnp.uint32(epoch))
    return Cursor(jnp.int32(epoch), jnp.int32(pos), this, following)


def next_batch_indices(cursor: Cursor, k_data, batch: int, n: int):
    """Indices [B] of the next batch (may straddle two epochs, needs B ≤ N), advanced cursor."""
    q = cursor.pos + jnp.arange(batch, dtype=jnp.int32)
    idx = jnp.where(q < n, cursor.perm[jnp.minimum(q, n - 1)], cursor.next_perm[q % n])
    pos = cursor.pos + batch

    def roll(c: Cursor) -> Cursor:
        e = c.epoch + 1
        nxt = jax.random.permutation(jax.random.fold_in(k_data, e + 1), n).astype(jnp.int32)
        return Cursor(e, c.pos - n, c.next_perm, nxt)

    cursor = cursor._replace(pos=pos)
    return idx, jax.lax.cond(pos >= n, roll, lambda c: c, cursor)


@functools.lru_cache(maxsize=32)
def make_chunk_indices(batch: int, n: int, n_steps: int):
    """jitted (cursor, k_data) → (cursor, indices [n_steps, B])."""

    def fn(cursor, k_data):
        def body(c, _):
            idx, c = next_batch_indices(c, k_data, batch, n)
            return c, idx

        return jax.lax.scan(body, cursor, None, length=n_steps)

    return jax.jit(fn)


def make_train_chunk(cfg: ml_collections.ConfigDict):
    """jitted (state, table[N,D], indices[n,B], k_train) → (state, stats [n] each).

    The table is an argument (not a constant), so it is placed on the device once. Compiled
    functions are cached per resolved config, so runs of the same config compile once.
    """
    relevant = cfg.to_dict()  # the seed, paths and evaluation settings do not enter the step
    for field in ("random_seed", "eval", "etl"):
        relevant.pop(field, None)
    relevant["dataset"] = {**relevant["dataset"], "data_dir": ""}
    return _train_chunk(json.dumps(relevant, sort_keys=True))


@functools.lru_cache(maxsize=16)
def _train_chunk(cfg_json: str):
    cfg = configs.from_json(cfg_json)
    step = make_train_step(cfg, make_nets(cfg))

    def chunk(state, table, indices, k_train):
        def body(s, idx):
            return step(s, table[idx], jax.random.fold_in(k_train, s.step))

        return jax.lax.scan(body, state, indices)

    return jax.jit(chunk, donate_argnums=0)


def config_differences(
    saved: ml_collections.ConfigDict,
    cfg: ml_collections.ConfigDict,
    ignored: tuple[str, ...] = ("eval.", "etl.", "dataset.data_dir"),
):
    """Dotted fields whose values differ, but those starting with `ignored` (by default the
    paths and the evaluation settings: the training fields)."""

    def flat(node, prefix=""):
        out = {}
        for key, value in node.items():
            if isinstance(value, dict):
                out.update(flat(value, f"{prefix}{key}."))
            else:
                out[f"{prefix}{key}"] = value
        return out

    a, b = flat(saved.to_dict()), flat(cfg.to_dict())
    keys = sorted(k for k in set(a) | set(b) if not k.startswith(ignored))
    return [k for k in keys if a.get(k) != b.get(k)]


class TrainResult(NamedTuple):
    state: TrainState
    finished: bool  # False when stopped early (SIGTERM or stop_at_step)
    resumed_from: int  # step of the checkpoint resumed from (0 for a fresh run)


def check_schedule(cfg: ml_collections.ConfigDict) -> int:
    """Effective steps per dispatch; the step counts must be multiples of it (docs/config.md)."""
    per_call = min(cfg.steps_per_call, cfg.training_steps)
    for field in ("training_steps", "log_every", "checkpoint_every"):
        if cfg[field] % per_call:
            raise ValueError(
                f"config field {field!r} = {cfg[field]} must be a multiple of steps_per_call "
                f"= {per_call}"
            )
    return per_call


def _write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=LOG_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    files.atomic_write_bytes(path, buf.getvalue().encode())


class _StopFlag:
    """Set by SIGTERM; the loop checkpoints and stops after the current dispatch."""

    def __init__(self):
        self.set = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        self.set = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


class Window(NamedTuple):
    """Running sums of the logging window under way (checkpointed, so a resumed run writes
    the same log rows as an uninterrupted one)."""

    stats: dict[str, list[float]]  # per-dispatch means of each statistic
    steps: int
    seconds: float


def _payload(state: TrainState, cfg, log_rows, window: Window) -> dict[str, Any]:
    """Everything a resume needs, including the training log up to this step."""
    return {
        "train_log": [dict(row) for row in log_rows],
        "window": {"stats": window.stats, "steps": window.steps, "seconds": window.seconds},
        "speaker": state.speaker,
        "target": state.target,
        "listener": state.listener,
        "speaker_opt": state.speaker_opt,
        "listener_opt": state.listener_opt,
        "step": int(state.step),
        "config": configs.to_json(cfg),
    }


def _restore(path: Path, payload: dict[str, Any], template: TrainState) -> TrainState:
    """The state of a loaded checkpoint, every tree checked against `template`."""

    def get(name):
        return checkpoint.restore_like(
            checkpoint.field(payload, name, path), getattr(template, name), name, path
        )

    step = checkpoint.field(payload, "step", path)
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise checkpoint.CheckpointError(f"{path}: field 'step' = {step!r} is not a step count")
    names = ("speaker", "target", "listener", "speaker_opt", "listener_opt")
    return TrainState(*(get(name) for name in names), jnp.int32(step))


def _window(path: Path, payload: dict[str, Any]) -> Window:
    saved = payload.get("window") or {"stats": {}, "steps": 0, "seconds": 0.0}
    try:
        stats = {str(k): [float(v) for v in vs] for k, vs in saved["stats"].items()}
        return Window(stats, int(saved["steps"]), float(saved["seconds"]))
    except (KeyError, TypeError, ValueError, AttributeError):
        raise checkpoint.CheckpointError(f"{path}: malformed field 'window'") from None


def train(
    cfg: ml_collections.ConfigDict,
    features: np.ndarray | FeatureSource,
    run_dir: str | Path,
    progress: bool = True,
    stop_at_step: int | None = None,
    on_log: Callable[[dict[str, Any]], None] | None = None,
    on_dispatch: Callable[[int, TrainState], None] | None = None,
) -> TrainResult:
    """Train one game on `features` (the train split [N,D]) into `run_dir` (results/README.md).

    Resumes from the newest valid checkpoint of `run_dir`; a run whose final checkpoint exists
    returns it at once. `stop_at_step` stops (with a checkpoint) like SIGTERM would, at the
    first dispatch that reaches it (at once if the resumed checkpoint is already there). A
    non-finite statistic or parameter stops with FloatingPointError; no checkpoint is written
    over the last good one. `on_log(row)` gets each log row, `on_dispatch(step, state)` the
    state after each dispatch (e.g. to evaluate it; the state's buffers are reused afterwards).
    """
    if not str(run_dir).strip():
        raise ValueError("the run directory is empty; give a folder for this run's outputs")
    run_dir = Path(run_dir)
    per_call = check_schedule(cfg)
    streaming = not isinstance(features, np.ndarray)
    n, dim = (features.num_examples, features.feature_dim) if streaming else features.shape
    if cfg.batch_size > n:
        raise ValueError(f"batch_size {cfg.batch_size} exceeds the {n} training examples")
    if not streaming and not np.all(np.isfinite(features)):
        raise ValueError("the training feature table contains NaN or infinite values")
    nets = make_nets(cfg)
    k_init, k_data, k_train = root_keys(cfg.random_seed)
    state = init_state(cfg, nets, dim, k_init)

    def accept(path: Path, payload: dict[str, Any]):
        saved = checkpoint.field(payload, "config", path)
        changed = config_differences(configs.from_json(saved), cfg)
        if changed:
            raise ValueError(
                f"{path} was written with another config (fields {', '.join(changed)} differ); "
                f"delete {run_dir} to train afresh or restore the config to resume"
            )
        return _restore(path, payload, state), _window(path, payload)

    for folder in (run_dir, run_dir / "checkpoints"):
        if folder.is_dir():
            files.remove_stale_temps(folder)
    found = checkpoint.latest_valid(run_dir, accept=accept)
    resumed_from, log_rows, window = 0, [], Window({}, 0, 0.0)
    if found is not None:
        path, payload, (state, window) = found
        resumed_from = int(state.step)
        log_rows = list(payload.get("train_log", []))
        if path == checkpoint.final_path(run_dir):
            if not (run_dir / "train_log.csv").exists():
                _write_log(run_dir / "train_log.csv", log_rows)
            return TrainResult(state, True, resumed_from)
        if stop_at_step is not None and resumed_from >= stop_at_step:
            return TrainResult(state, False, resumed_from)  # already there
    configs_json = configs.to_json(cfg)
    files.atomic_write_bytes(run_dir / "config.json", configs_json.encode())
    # The log up to the checkpoint lives in the checkpoint: a deleted or longer CSV is rebuilt.
    log_path = run_dir / "train_log.csv"
    _write_log(log_path, log_rows)

    chunk_fn = make_train_chunk(cfg)
    index_fn = make_chunk_indices(cfg.batch_size, n, per_call)
    cursor = start_cursor(k_data, resumed_from, cfg.batch_size, n)
    table = None if streaming else jax.device_put(np.asarray(features, np.float32))

    stats_window, window_steps, window_time = window
    step = resumed_from
    bar = tqdm(
        total=cfg.training_steps, initial=step, disable=not progress, desc=configs.run_id(cfg)
    )
    meter = Progress(f"train {configs.run_id(cfg)}", cfg.training_steps - step, "steps")
    with _StopFlag() as stop:
        while step < cfg.training_steps:
            tic = time.perf_counter()
            cursor, indices = index_fn(cursor, k_data)
            if streaming:
                flat = np.asarray(indices).reshape(-1)
                chunk_table = jnp.asarray(features.gather(flat), jnp.float32)
                chunk_idx = jnp.arange(flat.size, dtype=jnp.int32).reshape(indices.shape)
                state, stats = chunk_fn(state, chunk_table, chunk_idx, k_train)
            else:
                state, stats = chunk_fn(state, table, indices, k_train)
            stats = jax.device_get(stats)
            window_time += time.perf_counter() - tic
            for name in ALWAYS_FINITE:
                bad = np.flatnonzero(~np.isfinite(stats[name]))
                if bad.size:
                    raise FloatingPointError(
                        f"non-finite {name} at step {step + int(bad[0]) + 1} of {run_dir}; "
                        "stopped without writing a checkpoint (the last one is kept)"
                    )
            step += per_call
            for name, values in stats.items():
                stats_window.setdefault(name, []).append(float(np.mean(values)))
            window_steps += per_call
            bar.update(per_call)
            meter.update(per_call)
            if on_dispatch:
                on_dispatch(step, state)  # not timed; must not keep `state` (donated next)
            if step % cfg.log_every == 0 or step == cfg.training_steps:
                row = {"step": step, **{k: float(np.mean(v)) for k, v in stats_window.items()}}
                row["steps_per_second"] = window_steps / max(window_time, 1e-9)
                log_rows.append(row)
                _write_log(log_path, log_rows)
                bar.set_postfix(acc=f"{row['accuracy']:.3f}", p=f"{row['channel_p']:.2f}")
                if on_log:
                    on_log(row)
                stats_window, window_steps, window_time = {}, 0, 0.0
            if step == cfg.training_steps:
                break
            interrupted = stop.set or (stop_at_step is not None and step >= stop_at_step)
            if step % cfg.checkpoint_every == 0 or interrupted:
                window = Window(stats_window, window_steps, window_time)
                checkpoint.save_checkpoint(
                    checkpoint.periodic_path(run_dir, step),
                    _payload(state, cfg, log_rows, window),
                )
                checkpoint.prune_periodic(run_dir, max(cfg.keep_checkpoints, 1))
            if interrupted:
                bar.close()
                return TrainResult(state, False, resumed_from)
    bar.close()
    checkpoint.save_checkpoint(
        checkpoint.final_path(run_dir), _payload(state, cfg, log_rows, Window({}, 0, 0.0))
    )
    return TrainResult(state, True, resumed_from)
