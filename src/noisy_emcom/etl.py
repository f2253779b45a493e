"""Ease of transfer learning (docs/etl.md): new listeners learn tasks from a frozen speaker.

The speaker comes from an LG(S)/LG(RL)/NLG training checkpoint and is never updated (no
optimiser; its parameters are an argument of the jitted step, not a trained input). Its
messages (`etl.decoding`) cross an erasure channel at the constant p = `etl.noise` when
p > 0. The new listener is the message encoder of docs/science.md#listener-message-encoder
(vocabulary V+1 with its own erased-token row when p > 0 and `etl.erased_token_embedding = own`,
else V, id V aliased to V−1) and a task head on h ∈ R^H:

- `discrimination`: L = m·cᵀ, m = tanh(Linear(h)), c = tanh(Linear(view 1)); loss
  −log softmax(L_b)_b; `accuracy`.
- `discriminationdist`: S = −‖p̂ − ẑ‖² on view 2 and InfoNCE, as the LG(S) listener; `accuracy`.
- `classification`: Linear(256) → ReLU → Linear(n_classes); softmax cross-entropy;
  `accuracy`, `rank5_accuracy`.
- `attribute`: per attribute Linear(256) → ReLU → Linear(2); mean over attributes of the
  cross-entropy; `accuracy` (mean over attributes) and `accuracy_<name>`.
- `reconstruction`: Linear(4·4·128) → reshape → ReLU → 4 × [nearest ×2, Conv3×3 (no bias),
  ReLU] → Conv3×3(3, no bias) → tanh; ½Σ(ŷ − y)²; `loss`, `mse`, `psnr` = 10·log10(4/mse).

Training: objective = per-game mean of the task loss; `etl.steps_per_call` steps per dispatch in
`lax.scan`, data order and keys as in training (docs/science.md#randomness-and-data-order) from
`etl.random_seed` (reusing `train.start_cursor` and `train.make_chunk_indices`), a learning
curve CSV and atomic, resumable checkpoints.
Test: `etl.eval_epochs` passes over `test` in batches of `etl.batch_size` (remainder dropped),
order and per-batch keys of docs/tests.md#common-protocol from `eval.seed`.

Labels are kept as integers on the device (the cross-entropy with integer labels equals the
one with the one-hot encoding; a 10,178-wide one-hot table of CelebA would not fit), and images
as uint8, scaled to [−1, 1] (x/127.5 − 1, as `loader.scale_images`) inside the step.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import io
import math
import time
from pathlib import Path
from typing import Any, NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pandas as pd
from tqdm.auto import tqdm

from noisy_emcom import (
    channels,
    checkpoint,
    configs,
    evaluate,
    files,
    game,
    losses,
    networks,
    train,
    xla,
)
from noisy_emcom.configs.etl import TASK_DATASETS, TASKS
from noisy_emcom.data import loader
from noisy_emcom.data.errors import DataError
from noisy_emcom.progress import Progress

# Fields each task needs, and the dataset variants of docs/etl.md to name when they are missing.
TASK_FIELDS = {
    "discrimination": ("logit",),
    "discriminationdist": ("logit",),
    "classification": ("logit", "label"),
    "attribute": ("logit", "attributes"),
    "reconstruction": ("logit", "image"),
}
# The generated `debug` table (docs/config.md): train rows 0..4095, test rows 4096..5119.
DEBUG_FIELDS = ("logit", "label")
IMAGE_SHAPE = (64, 64, 3)
PNG_IMAGES = 32
LISTENER_FILE = "listener.ckpt"
CURVE_FILE = "curve.csv"
RESULT_COLUMNS = (
    "run_id",
    "game",
    "dataset",
    "train_batch_size",
    "train_noise",
    "seed",
    "checkpoint_step",
    "task",
    "etl_dataset",
    "etl_noise",
    "decoding",
    "etl_seed",
    "etl_steps",
    "metric",
    "value",
)


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def _names(datasets) -> str:
    quoted = [f"`{d}`" for d in datasets]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def needs_message(task: str) -> str:
    """'`attribute` needs `celeba_noimg` or `shapes_noimg`'."""
    return f"`{task}` needs {_names(TASK_DATASETS[task])}"


def check_task_dataset(task: str, dataset: str, data_dir=None) -> None:
    """Refuse a registry dataset that lacks a field the task needs, naming the variants to use.

    `.npz`/`.npy` datasets are checked when loaded (`load_task_split`)."""
    if task not in TASK_FIELDS:
        raise ValueError(f"unknown ETL task {task!r}; expected one of {list(TASKS)}")
    if str(dataset).endswith((".npz", ".npy")):
        return
    name = str(dataset).partition(":")[0]
    have = DEBUG_FIELDS if name == "debug" else loader.get_spec(name, data_dir).fields
    missing = [f for f in TASK_FIELDS[task] if f not in have]
    if missing:
        raise DataError(
            f"{needs_message(task)} (or another variant with field {missing[0]!r}); dataset "
            f"{name!r} has no field {missing[0]!r}"
        )


class TaskData(NamedTuple):
    """One split for one task: `x` logit [N,D] float32 and the target `y` (None for the
    discrimination tasks): label [N] int32, attributes [N,A] int32 (0/1) or image [N,64,64,3]
    uint8."""

    x: np.ndarray
    y: np.ndarray | None


def load_task_split(
    task: str,
    dataset: str,
    split: str,
    data_dir,
    feature_dim: int | None = None,
    trained: str = "",
) -> TaskData:
    """Load what `task` needs from one split of `dataset` (sweep name, file or `debug`);
    `trained` names the speaker's training dataset in a width error."""
    check_task_dataset(task, dataset, data_dir)
    fields = TASK_FIELDS[task]
    if dataset == "debug":
        from noisy_emcom import synthetic

        x, labels = synthetic.clustered_features(
            evaluate.DEBUG_TEST_ROWS[1], dim=32, n_clusters=64, seed=0
        )
        rows = (
            slice(0, evaluate.DEBUG_TEST_ROWS[0])
            if split == "train"
            else slice(evaluate.DEBUG_TEST_ROWS[0], None)
        )
        arrays = {"logit": x[rows], "label": labels[rows]}
    else:
        try:
            arrays = loader.load_split(dataset, split, data_dir, fields)
        except DataError as err:
            if any(f"{f!r}" in str(err) for f in fields[1:]):
                raise DataError(f"{needs_message(task)}: {err}") from err
            raise
    if feature_dim is not None and arrays["logit"].shape[1] != feature_dim:
        raise DataError(
            f"dataset {dataset!r}: field 'logit' has width {arrays['logit'].shape[1]}, the "
            f"speaker expects {feature_dim}"
            + (f" (it was trained on {trained!r})" if trained else "")
        )
    x = np.asarray(arrays["logit"], np.float32)
    if not np.all(np.isfinite(x)):
        raise DataError(f"dataset {dataset!r} split {split!r}: 'logit' has NaN or inf values")
    y = None
    if task == "classification":
        y = np.asarray(arrays["label"]).astype(np.int32)
    elif task == "attribute":
        y = np.asarray(arrays["attributes"]).astype(np.int32)
    elif task == "reconstruction":
        y = np.asarray(arrays["image"], np.uint8)
        if y.shape[1:] != IMAGE_SHAPE:
            raise DataError(
                f"dataset {dataset!r}: field 'image' has shape {y.shape[1:]}, "
                f"expected {IMAGE_SHAPE}"
            )
    return TaskData(x, y)


def output_size(task: str, dataset: str, data_dir, train_data: TaskData) -> tuple[int, list[str]]:
    """(n_classes or n_attributes, attribute names) of a task on a dataset."""
    if task == "classification":
        if dataset == "debug":
            return 64, []
        if str(dataset).endswith((".npz", ".npy")):
            return int(train_data.y.max()) + 1, []
        return loader.label_depth(dataset, data_dir), []
    if task == "attribute":
        return train_data.y.shape[1], list(loader.attribute_names(dataset, data_dir))
    return 0, []


def _check_labels(task: str, data: TaskData, out_dim: int, split: str) -> None:
    if task == "classification" and data.y.size and (data.y.min() < 0 or data.y.max() >= out_dim):
        raise DataError(
            f"split {split!r}: label values {data.y.min()}..{data.y.max()} outside the "
            f"one-hot depth 0..{out_dim - 1}"
        )
    if task == "attribute" and data.y.shape[1] != out_dim:
        raise DataError(f"split {split!r}: {data.y.shape[1]} attributes, expected {out_dim}")


# --------------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------------


class AttributeHeads(hk.Module):
    """One MLP Linear(hidden) → ReLU → Linear(2) per attribute, as one batched computation.

    Parameters [A, ...] with Haiku's Linear initialisers (truncated normal σ = 1/√fan_in, bias
    0): h [B,H] → logits [B,A,2]."""

    def __init__(self, n_attributes: int, hidden: int, name: str = "attribute_heads"):
        super().__init__(name=name)
        self.n, self.hidden = n_attributes, hidden

    def __call__(self, h):
        fan_in = h.shape[-1]
        w1 = hk.get_parameter(
            "w1",
            (self.n, fan_in, self.hidden),
            h.dtype,
            hk.initializers.TruncatedNormal(1.0 / math.sqrt(fan_in)),
        )
        b1 = hk.get_parameter("b1", (self.n, self.hidden), h.dtype, jnp.zeros)
        w2 = hk.get_parameter(
            "w2",
            (self.n, self.hidden, 2),
            h.dtype,
            hk.initializers.TruncatedNormal(1.0 / math.sqrt(self.hidden)),
        )
        b2 = hk.get_parameter("b2", (self.n, 2), h.dtype, jnp.zeros)
        z = jax.nn.relu(jnp.einsum("bh,ahk->bak", h, w1) + b1)
        return jnp.einsum("bak,akc->bac", z, w2) + b2


class ImageDecoder(hk.Module):
    """h → Linear(∏latent) → reshape latent → ReLU → per channel count c: [nearest ×2
    upsampling → Conv3×3(c, no bias) → ReLU] → Conv3×3(3, no bias) → tanh: [B,64,64,3].
    Upsampling + convolution is `networks.UpsampleConv2D` (parameters as `hk.Conv2D`); the
    last convolution is `hk.Conv2D` (XLA's own convolution is the faster one for 3 outputs)."""

    def __init__(self, latent, channels_, name: str = "decoder"):
        super().__init__(name=name)
        self.latent, self.channels = tuple(latent), tuple(channels_)

    def __call__(self, h):
        z = hk.Linear(int(np.prod(self.latent)), name="latent")(h)
        z = jax.nn.relu(z.reshape(h.shape[0], *self.latent))
        for i, c in enumerate(self.channels):
            z = jax.nn.relu(networks.UpsampleConv2D(c, name=f"conv_{i}")(z))
        return jnp.tanh(hk.Conv2D(3, 3, with_bias=False, name="conv_out")(z))


def make_listener(cfg: ml_collections.ConfigDict, vocab: int, out_dim: int) -> hk.Transformed:
    """apply(params, tokens[B,T], candidates[B,D]) → task output (scores [B,B], logits
    [B,C], [B,A,2] or images [B,64,64,3])."""
    e, lc = cfg.etl, cfg.listener

    def forward(tokens, candidates):
        h = networks.MessageEncoder(vocab, lc.embed_dim, lc.lstm_size)(tokens)
        if e.task in ("discrimination", "discriminationdist"):
            m = jnp.tanh(hk.Linear(e.head_hidden, name="message_proj")(h))
            c = jnp.tanh(hk.Linear(e.head_hidden, name="candidate_proj")(candidates))
            return m @ c.T if e.task == "discrimination" else networks.cosine_scores(m, c)
        if e.task == "classification":
            return hk.nets.MLP((e.head_hidden, out_dim), name="classifier")(h)
        if e.task == "attribute":
            return AttributeHeads(out_dim, e.head_hidden)(h)
        return ImageDecoder(e.recon_latent, e.recon_channels)(h)

    return hk.without_apply_rng(hk.transform(forward))


def make_optimizer(o: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """Adam, or AdamW; with clipping by global norm first when `clip_norm` > 0."""
    if o.name == "adam":
        if o.weight_decay:
            raise ValueError("config field 'etl.optimizer.weight_decay' needs name 'adamw'")
        tx = optax.adam(o.learning_rate, b1=o.b1, b2=o.b2, eps=o.eps)
    elif o.name == "adamw":
        tx = optax.adamw(o.learning_rate, b1=o.b1, b2=o.b2, eps=o.eps, weight_decay=o.weight_decay)
    else:
        raise ValueError(f"config field 'etl.optimizer.name' = {o.name!r}: adam|adamw")
    return optax.chain(optax.clip_by_global_norm(o.clip_norm), tx) if o.clip_norm > 0 else tx


# --------------------------------------------------------------------------------------------
# The speaker and the round
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Speaker:
    """The frozen speaker of a training checkpoint."""

    cfg: ml_collections.ConfigDict
    params: Any
    step: int
    path: str

    @property
    def feature_dim(self) -> int:
        return int(self.params["speaker/initial_state"]["w"].shape[0])

    @functools.cached_property
    def fingerprint(self) -> str:
        return params_fingerprint(self.params)


def params_fingerprint(params) -> str:
    """SHA-256 of every parameter's path, dtype, shape and bytes (order-independent)."""
    h = hashlib.sha256()
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    for path, leaf in sorted(flat, key=lambda kv: jax.tree_util.keystr(kv[0])):
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{jax.tree_util.keystr(path)}|{a.dtype}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def load_speaker(path: str | Path) -> Speaker:
    """The speaker of a training checkpoint (`checkpoint.load_model`)."""
    cfg, speaker_params, _, step = checkpoint.load_model(path)
    return Speaker(cfg, speaker_params, step, str(path))


def listener_vocab(cfg: ml_collections.ConfigDict, speaker_vocab: int) -> int:
    """V+1 with its own erased row when noise > 0 and `own`, else V (id V aliased to V−1)."""
    e = cfg.etl
    return speaker_vocab + 1 if e.noise > 0 and e.erased_token_embedding == "own" else speaker_vocab


def make_round(
    cfg: ml_collections.ConfigDict, speaker_cfg: ml_collections.ConfigDict, vocab: int, out_dim: int
):
    """round(listener_params, speaker_params, x[B,D], y, key, channel_params) →
    (objective = per-game mean of the task loss, sums of the batch's statistics)."""
    e = cfg.etl
    speaker = networks.make_speaker(speaker_cfg)
    listener = make_listener(cfg, vocab, out_dim)
    v = int(speaker_cfg.vocab_size)
    c = float(e.input_noise)
    task = e.task
    rank_k = int(e.rank_k)

    def round_fn(listener_params, speaker_params, x, y, key, channel):
        k_spk, k_chan, _, k_noise = game.step_keys(key)
        b = x.shape[0]
        speaker_x = candidates = x
        if c > 0:
            view1, view2 = channels.input_noise_views(k_noise, x, c)
            speaker_x = view1
            candidates = view2 if task == "discriminationdist" else view1
        sent = speaker.apply(speaker_params, speaker_x, k_spk, e.decoding).tokens
        received = channels.apply_channel(k_chan, jax.lax.stop_gradient(sent), channel, v)
        out = listener.apply(listener_params, received, candidates)
        stats = {"n_games": jnp.float32(b), "erased": jnp.sum(received == v, dtype=jnp.float32)}
        if task in ("discrimination", "discriminationdist"):
            loss = losses.infonce_loss(out)  # Σ_b −log softmax_j(scores[b])_b, target b
            stats["correct"] = jnp.sum(jnp.argmax(out, -1) == jnp.arange(b), dtype=jnp.float32)
        elif task == "classification":
            loss = jnp.sum(optax.softmax_cross_entropy_with_integer_labels(out, y))
            target = jnp.take_along_axis(out, y[:, None], axis=-1)
            rank = jnp.sum(out > target, axis=-1)  # logits strictly above the target's
            stats["correct"] = jnp.sum(jnp.argmax(out, -1) == y, dtype=jnp.float32)
            stats["rank_correct"] = jnp.sum(rank < rank_k, dtype=jnp.float32)
        elif task == "attribute":
            ce = optax.softmax_cross_entropy_with_integer_labels(out, y)  # [B,A]
            loss = jnp.sum(jnp.mean(ce, axis=-1))
            hits = (jnp.argmax(out, -1) == y).astype(jnp.float32)  # [B,A]
            stats["attribute_correct"] = jnp.sum(hits, axis=0)
            stats["correct"] = jnp.sum(jnp.mean(hits, axis=-1))
        else:
            target = y.astype(jnp.float32) / 127.5 - 1.0
            sq = jnp.sum(jnp.square(out - target).reshape(b, -1), axis=-1)  # [B]
            loss = 0.5 * jnp.sum(sq)
            stats["sq_error"] = jnp.sum(sq)
        stats["loss"] = loss
        return loss / b, stats

    return round_fn, listener


class EtlState(NamedTuple):
    params: hk.Params
    opt: optax.OptState
    step: jax.Array  # int32 scalar


def _init_state(cfg, listener: hk.Transformed, length: int, feature_dim: int, k_init) -> EtlState:
    b = cfg.etl.batch_size
    tokens = jnp.zeros((b, length), jnp.int32)
    features = jnp.zeros((b, feature_dim), jnp.float32)

    def init(k_init):
        params = listener.init(k_init, tokens, features)
        return EtlState(
            params, make_optimizer(cfg.etl.optimizer).init(params), jnp.zeros((), jnp.int32)
        )

    return xla.run_once(init, k_init)


def channel_params(cfg: ml_collections.ConfigDict, length: int) -> channels.ChannelParams:
    return channels.erasure(float(cfg.etl.noise), length)


def make_train_chunk(cfg, speaker_cfg, vocab: int, out_dim: int):
    """jitted (state, speaker_params, x_table, y_table, indices[n,B], k_train, channel) →
    (state, per-step statistics [n]). The speaker parameters are an argument that receives no
    gradient and no update. Cached per configuration (paths and seeds excluded), so a resumed
    or repeated run in the same process compiles once."""
    return _train_chunk(
        _step_json(cfg), configs.to_json(_step_json_speaker(speaker_cfg)), vocab, out_dim
    )


def _step_json(cfg: ml_collections.ConfigDict) -> str:
    """The parts of the ETL config the step depends on (not the data path or the seeds)."""
    out = _run_free(cfg)
    out.eval.seed = 0
    for field in ("random_seed", "training_steps", "log_every", "checkpoint_every",
                  "keep_checkpoints", "eval_epochs"):  # fmt: skip
        out.etl[field] = 0
    return configs.to_json(out)


def _step_json_speaker(speaker_cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The speaker architecture (vocabulary, length, sizes) without its training details."""
    return ml_collections.ConfigDict(
        {
            "vocab_size": speaker_cfg.vocab_size,
            "length": speaker_cfg.length,
            "speaker": {
                "embed_dim": speaker_cfg.speaker.embed_dim,
                "lstm_size": speaker_cfg.speaker.lstm_size,
            },
        }
    )


@functools.lru_cache(maxsize=8)
def _train_chunk(cfg_json: str, speaker_json: str, vocab: int, out_dim: int):
    cfg, speaker_cfg = configs.from_json(cfg_json), configs.from_json(speaker_json)
    round_fn, _ = make_round(cfg, speaker_cfg, vocab, out_dim)
    opt = make_optimizer(cfg.etl.optimizer)

    def step(state: EtlState, speaker_params, x, y, key, chan):
        grads, stats = jax.grad(round_fn, has_aux=True)(
            state.params, speaker_params, x, y, key, chan
        )
        updates, opt_state = opt.update(grads, state.opt, state.params)
        params = optax.apply_updates(state.params, updates)
        return EtlState(params, opt_state, state.step + 1), stats

    def chunk(state, speaker_params, x_table, y_table, indices, k_train, chan):
        def body(s, idx):
            y = None if y_table is None else y_table[idx]
            return step(
                s, speaker_params, x_table[idx], y, jax.random.fold_in(k_train, s.step), chan
            )

        return jax.lax.scan(body, state, indices)

    return jax.jit(chunk, donate_argnums=0)


# --------------------------------------------------------------------------------------------
# Curve and metrics
# --------------------------------------------------------------------------------------------


def curve_columns(task: str) -> tuple[str, ...]:
    extra = {
        "classification": ("accuracy", "rank5_accuracy"),
        "reconstruction": ("mse", "psnr"),
    }.get(task, ("accuracy",))
    return ("step", "loss", *extra, "erased_fraction", "steps_per_second")


def metrics_from_sums(
    task: str, sums: dict[str, np.ndarray], length: int, attribute_names: list[str] | None = None
) -> dict[str, float]:
    """Per-game means of summed statistics (attribute accuracies per name as well)."""
    n = float(sums["n_games"])
    out = {"loss": float(sums["loss"]) / n}
    if task == "reconstruction":
        mse = float(sums["sq_error"]) / (n * int(np.prod(IMAGE_SHAPE)))
        out["mse"] = mse
        out["psnr"] = 10.0 * math.log10(4.0 / mse) if mse > 0 else math.inf
    else:
        out["accuracy"] = float(sums["correct"]) / n
    if task == "classification":
        out["rank5_accuracy"] = float(sums["rank_correct"]) / n
    if task == "attribute" and attribute_names:
        for name, hits in zip(attribute_names, np.asarray(sums["attribute_correct"]), strict=True):
            out[f"accuracy_{name}"] = float(hits) / n
    out["erased_fraction"] = float(sums["erased"]) / (n * length)
    out["n_games"] = n
    return out


def baseline_metrics(task: str, test: TaskData, batch: int) -> dict[str, float]:
    """What an answer that ignores the message scores on the test split (docs/etl.md):
    chance 1/batch for the discrimination tasks; the best constant answer otherwise: the most
    frequent class (and the 5 most frequent for rank-5), each attribute's majority value, the
    mean test image (MSE on the [−1, 1] scale and its PSNR)."""
    if task in ("discrimination", "discriminationdist"):
        return {"baseline_accuracy": 1.0 / batch}
    if task == "classification":
        counts = np.sort(np.bincount(np.asarray(test.y).astype(np.int64)))[::-1]
        n = counts.sum()
        return {
            "baseline_accuracy": float(counts[0] / n),
            "baseline_rank5_accuracy": float(counts[:5].sum() / n),
        }
    if task == "attribute":
        share = np.mean(np.asarray(test.y) > 0, axis=0)
        return {"baseline_accuracy": float(np.mean(np.maximum(share, 1 - share)))}
    # Per-pixel variance from running sums over chunks (no float copy of the whole split):
    # mse = mean over pixels of (E[y²] − E[y]²) / 127.5² on the [−1, 1] scale.
    total, squares = 0.0, 0.0
    for start in range(0, len(test.y), 1024):
        chunk = np.asarray(test.y[start : start + 1024], np.float64)
        total = total + chunk.sum(axis=0)
        squares = squares + np.square(chunk).sum(axis=0)
    n = len(test.y)
    mse = float(np.mean(squares / n - np.square(total / n))) / 127.5**2
    return {"baseline_mse": mse, "baseline_psnr": 10.0 * math.log10(4.0 / mse)}


def _write_curve(path: Path, rows: list[dict[str, Any]], columns) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    files.atomic_write_bytes(path, buf.getvalue().encode())


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


class EtlResult(NamedTuple):
    state: EtlState
    finished: bool
    resumed_from: int
    listener_path: Path


def _identity(cfg, speaker: Speaker) -> dict[str, Any]:
    """What a listener checkpoint must match to be resumed or tested with a speaker."""
    return {"config": configs.to_json(_run_free(cfg)), "speaker_fingerprint": speaker.fingerprint}


def _run_free(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The config without its data path (a moved data folder is the same run)."""
    out = configs.from_json(configs.to_json(cfg))
    out.dataset.data_dir = ""
    return out


def _payload(
    state: EtlState,
    cfg,
    speaker: Speaker,
    vocab: int,
    out_dim: int,
    names: list[str],
    curve,
    window: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything a resume needs: the curve so far and the sums of the window under way."""
    return {
        "kind": "etl_listener",
        "curve": [dict(row) for row in curve],
        "window": window or {"sums": {}, "steps": 0, "seconds": 0.0},
        "listener": state.params,
        "listener_opt": state.opt,
        "step": int(state.step),
        "config": configs.to_json(cfg),
        "listener_vocab": vocab,
        "out_dim": out_dim,
        "attribute_names": list(names),
        "speaker_run_id": configs.run_id(speaker.cfg),
        "speaker_step": speaker.step,
        **_identity(cfg, speaker),
    }  # fmt: skip


def _restore(path: Path, payload: dict, template: EtlState) -> tuple[EtlState, dict]:
    """(state, window) of a loaded listener checkpoint, checked against `template`."""
    step = checkpoint.field(payload, "step", path)
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise checkpoint.CheckpointError(f"{path}: field 'step' = {step!r} is not a step count")
    state = EtlState(
        checkpoint.restore_like(
            checkpoint.field(payload, "listener", path), template.params, "listener", path
        ),
        checkpoint.restore_like(
            checkpoint.field(payload, "listener_opt", path), template.opt, "listener_opt", path
        ),
        jnp.int32(step),
    )
    window = payload.get("window") or {"sums": {}, "steps": 0, "seconds": 0.0}
    try:
        sums = {str(k): np.asarray(v, np.float64)[()] for k, v in window["sums"].items()}
        window = {"sums": sums, "steps": int(window["steps"]), "seconds": float(window["seconds"])}
    except (KeyError, TypeError, ValueError, AttributeError):
        raise checkpoint.CheckpointError(f"{path}: malformed field 'window'") from None
    return state, window


def _check_belongs(path: Path, payload: dict, cfg, speaker: Speaker) -> None:
    if payload.get("kind") != "etl_listener":
        raise checkpoint.CheckpointError(f"{path} is not an ETL listener checkpoint")
    for key in ("speaker_fingerprint", "speaker_run_id", "speaker_step", "config"):
        checkpoint.field(payload, key, path)
    if payload["speaker_fingerprint"] != speaker.fingerprint:
        raise ValueError(
            f"{path} was trained on the messages of another speaker ({payload['speaker_run_id']} "
            f"step {payload['speaker_step']}), not {speaker.path}"
        )
    if cfg is not None and payload["config"] != _identity(cfg, speaker)["config"]:
        changed = train.config_differences(
            configs.from_json(payload["config"]), _run_free(cfg), ignored=()
        )
        raise ValueError(
            f"{path} belongs to another ETL configuration (fields {', '.join(changed)} differ); "
            "use another --out-dir"
        )


def train_etl(
    cfg: ml_collections.ConfigDict,
    speaker: Speaker,
    data_dir: str | Path | None,
    out_dir: str | Path,
    progress: bool = True,
    stop_at_step: int | None = None,
    train_data: TaskData | None = None,
) -> EtlResult:
    """Train the ETL listener of `cfg` on `speaker`'s messages into `out_dir`.

    Writes `curve.csv`, periodic checkpoints `checkpoints/step_*.ckpt` and the final
    `listener.ckpt`; resumes from the newest valid one (a finished run returns at once).
    `stop_at_step` stops with a checkpoint, as SIGTERM does."""
    e = cfg.etl
    if not str(out_dir).strip():
        raise ValueError("the ETL output directory is empty; give a folder for its outputs")
    out_dir = Path(out_dir)
    dataset = cfg.dataset.name
    check_task_dataset(e.task, dataset, data_dir)
    data = train_data or load_task_split(
        e.task, dataset, "train", data_dir, speaker.feature_dim, speaker.cfg.dataset.name
    )
    n = len(data.x)
    if e.batch_size > n:
        raise ValueError(
            f"config field 'etl.batch_size' = {e.batch_size} exceeds the {n} training examples "
            f"of {dataset!r}"
        )
    out_dim, names = output_size(e.task, dataset, data_dir, data)
    _check_labels(e.task, data, out_dim, "train")
    length = int(speaker.cfg.length)
    vocab = listener_vocab(cfg, int(speaker.cfg.vocab_size))
    k_init, k_data, k_train = train.root_keys(e.random_seed)
    round_fn, listener = make_round(cfg, speaker.cfg, vocab, out_dim)
    del round_fn
    state = _init_state(cfg, listener, length, speaker.feature_dim, k_init)

    def accept(path: Path, payload: dict):
        _check_belongs(path, payload, cfg, speaker)
        return _restore(path, payload, state)

    resumed_from = 0
    saved_window = {"sums": {}, "steps": 0, "seconds": 0.0}
    for folder in (out_dir, out_dir / "checkpoints"):
        if folder.is_dir():
            files.remove_stale_temps(folder)
    found = checkpoint.latest_valid(out_dir, LISTENER_FILE, accept)
    if found is not None:
        path, payload, (state, saved_window) = found
        resumed_from = int(state.step)
        if path == out_dir / LISTENER_FILE:
            if not (out_dir / CURVE_FILE).exists():
                _write_curve(out_dir / CURVE_FILE, payload.get("curve", []), curve_columns(e.task))
            return EtlResult(state, True, resumed_from, path)

    # The curve up to a checkpoint lives in the checkpoint: a deleted or longer CSV is rebuilt.
    columns = curve_columns(e.task)
    curve_path = out_dir / CURVE_FILE
    rows = list(payload.get("curve", [])) if found is not None else []
    _write_curve(curve_path, rows, columns)

    per_call = int(e.steps_per_call)
    chunk_fn = make_train_chunk(cfg, speaker.cfg, vocab, out_dim)
    index_fn = train.make_chunk_indices(e.batch_size, n, per_call)
    cursor = train.start_cursor(k_data, resumed_from, e.batch_size, n)
    x_table = jax.device_put(data.x)
    y_table = None if data.y is None else jax.device_put(data.y)
    speaker_params = jax.device_put(speaker.params)
    chan = channel_params(cfg, length)

    window: dict[str, Any] = saved_window["sums"]
    window_steps, window_time = saved_window["steps"], saved_window["seconds"]
    step = resumed_from
    bar = tqdm(
        total=e.training_steps,
        initial=step,
        disable=not progress,
        desc=f"etl {e.task} {dataset} p{e.noise}",
    )
    meter = Progress(f"etl {e.task} {dataset} p{e.noise}", e.training_steps - step, "steps")
    with train._StopFlag() as stop:
        while step < e.training_steps:
            tic = time.perf_counter()
            cursor, indices = index_fn(cursor, k_data)
            state, stats = chunk_fn(state, speaker_params, x_table, y_table, indices, k_train, chan)
            stats = jax.device_get(stats)
            window_time += time.perf_counter() - tic
            if not np.all(np.isfinite(stats["loss"])):
                raise FloatingPointError(
                    f"non-finite ETL loss before step {step + per_call} of {out_dir}"
                )
            for name, values in stats.items():
                window[name] = window.get(name, 0.0) + np.asarray(values, np.float64).sum(0)
            step += per_call
            window_steps += per_call
            bar.update(per_call)
            meter.update(per_call)
            if step % e.log_every == 0 or step == e.training_steps:
                row = {"step": step, **metrics_from_sums(e.task, window, length)}
                row["steps_per_second"] = window_steps / max(window_time, 1e-9)
                rows.append(row)
                _write_curve(curve_path, rows, columns)
                bar.set_postfix(loss=f"{row['loss']:.3g}")
                window, window_steps, window_time = {}, 0, 0.0
            if step == e.training_steps:
                break
            interrupted = stop.set or (stop_at_step is not None and step >= stop_at_step)
            if step % e.checkpoint_every == 0 or interrupted:
                saved_window = {"sums": window, "steps": window_steps, "seconds": window_time}
                checkpoint.save_checkpoint(
                    checkpoint.periodic_path(out_dir, step),
                    _payload(state, cfg, speaker, vocab, out_dim, names, rows, saved_window),
                )
                checkpoint.prune_periodic(out_dir, max(e.keep_checkpoints, 1))
            if interrupted:
                bar.close()
                return EtlResult(
                    state, False, resumed_from, checkpoint.periodic_path(out_dir, step)
                )
    bar.close()
    final = out_dir / LISTENER_FILE
    checkpoint.save_checkpoint(final, _payload(state, cfg, speaker, vocab, out_dim, names, rows))
    return EtlResult(state, True, resumed_from, final)


# --------------------------------------------------------------------------------------------
# Test
# --------------------------------------------------------------------------------------------


def eval_setting(cfg: ml_collections.ConfigDict) -> evaluate.Setting:
    """The test setting whose hash derives the per-batch keys of the ETL test pass (as in
    docs/tests.md#common-protocol)."""
    e = cfg.etl
    noisy_input = e.input_noise > 0
    view = "independent" if e.task == "discriminationdist" else "same"
    return evaluate.Setting(
        test=f"etl_{e.task}",
        eval_batch_size=int(e.batch_size),
        channel="erasure" if e.noise > 0 else "identity",
        channel_p=float(e.noise) if e.noise > 0 else None,
        input_noise=float(e.input_noise) if noisy_input else None,
        listener_view=view if noisy_input else None,
    )


class EtlOutcome(NamedTuple):
    metrics: dict[str, float]
    images: np.ndarray | None  # [n,64,64,3] uint8 test images (reconstruction only)
    reconstructions: np.ndarray | None  # [n,64,64,3] float32 in [-1, 1]


@functools.lru_cache(maxsize=8)
def _test_fn(cfg_json: str, speaker_json: str, vocab: int, out_dim: int):
    cfg, speaker_cfg = configs.from_json(cfg_json), configs.from_json(speaker_json)
    round_fn, listener = make_round(cfg, speaker_cfg, vocab, out_dim)

    def run(listener_params, speaker_params, x_table, y_table, order, base_key, chan):
        def body(acc, item):
            i, idx = item
            y = None if y_table is None else y_table[idx]
            _, stats = round_fn(
                listener_params,
                speaker_params,
                x_table[idx],
                y,
                jax.random.fold_in(base_key, i),
                chan,
            )
            return jax.tree_util.tree_map(jnp.add, acc, stats), None

        zero = jax.eval_shape(
            lambda: round_fn(
                listener_params,
                speaker_params,
                x_table[order[0]],
                None if y_table is None else y_table[order[0]],
                base_key,
                chan,
            )[1]
        )
        acc0 = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), zero)
        steps = jnp.arange(order.shape[0], dtype=jnp.uint32)
        return jax.lax.scan(body, acc0, (steps, order))[0]

    def reconstruct(listener_params, speaker_params, x, key, chan):
        k_spk, k_chan, _, k_noise = game.step_keys(key)
        speaker = networks.make_speaker(speaker_cfg)
        if cfg.etl.input_noise > 0:  # as in the round (only if input noise was configured)
            x, _ = channels.input_noise_views(k_noise, x, float(cfg.etl.input_noise))
        sent = speaker.apply(speaker_params, x, k_spk, cfg.etl.decoding).tokens
        received = channels.apply_channel(k_chan, sent, chan, int(speaker_cfg.vocab_size))
        return listener.apply(listener_params, received, x)

    return jax.jit(run), jax.jit(reconstruct)


def evaluate_listener(
    cfg: ml_collections.ConfigDict,
    speaker: Speaker,
    listener_params,
    vocab: int,
    out_dim: int,
    test_data: TaskData,
    attribute_names: list[str] | None = None,
    n_images: int = PNG_IMAGES,
) -> EtlOutcome:
    """One (`etl.eval_epochs`) pass over the test split in batches of `etl.batch_size`,
    remainder dropped; order and batch keys of the tests (docs/tests.md) from `eval.seed`
    (repetition 0). Reconstruction also returns the first `n_images` test images with their
    reconstructions (all with the key of test batch 0)."""
    e = cfg.etl
    n, b = len(test_data.x), int(e.batch_size)
    if n < b:
        raise ValueError(
            f"config field 'etl.batch_size' = {b} exceeds the {n} test examples of "
            f"{cfg.dataset.name!r}"
        )
    _check_labels(e.task, test_data, out_dim, "test")
    seed = int(cfg.eval.seed)
    order = evaluate.eval_batches(n, b, seed, 0, int(e.eval_epochs))
    base = evaluate.setting_key(seed, 0, eval_setting(cfg).hash())
    run, reconstruct = _test_fn(
        _step_json(cfg), configs.to_json(_step_json_speaker(speaker.cfg)), vocab, out_dim
    )
    length = int(speaker.cfg.length)
    chan = channel_params(cfg, length)
    x_table = jax.device_put(test_data.x)
    y_table = None if test_data.y is None else jax.device_put(test_data.y)
    sums = jax.device_get(
        run(listener_params, speaker.params, x_table, y_table, jnp.asarray(order), base, chan)
    )
    metrics = metrics_from_sums(e.task, sums, length, attribute_names)
    metrics.update(baseline_metrics(e.task, test_data, b))
    images = recon = None
    if e.task == "reconstruction":
        m = min(n_images, n)
        recon = np.asarray(
            reconstruct(
                listener_params, speaker.params, x_table[:m], jax.random.fold_in(base, 0), chan
            )
        )
        images = test_data.y[:m]
    return EtlOutcome(metrics, images, recon)


def load_listener(path: str | Path, speaker: Speaker) -> tuple[ml_collections.ConfigDict, dict]:
    """(ETL config, payload) of a listener checkpoint trained on `speaker`'s messages; the
    listener's parameters are checked against the network its config builds."""
    path = Path(path)
    payload = checkpoint.load_checkpoint(path)
    _check_belongs(path, payload, None, speaker)
    cfg = configs.from_json(payload["config"])
    vocab, out_dim = checkpoint.field(payload, "listener_vocab", path), payload.get("out_dim")
    if not (isinstance(vocab, int) and vocab > 0 and isinstance(out_dim, int) and out_dim >= 0):
        raise checkpoint.CheckpointError(f"{path}: bad 'listener_vocab' or 'out_dim'")
    b = int(cfg.etl.batch_size)
    ref = jax.eval_shape(
        make_listener(cfg, vocab, out_dim).init,
        jax.random.PRNGKey(0),
        jnp.zeros((b, int(speaker.cfg.length)), jnp.int32),
        jnp.zeros((b, speaker.feature_dim), jnp.float32),
    )
    payload["listener"] = checkpoint.restore_like(
        checkpoint.field(payload, "listener", path), ref, "listener", path
    )
    return cfg, payload


def result_rows(cfg, speaker: Speaker, etl_steps: int, metrics: dict[str, float]) -> pd.DataFrame:
    """Long-format rows: the speaker's identifying columns + ETL columns + metric, value."""
    s = speaker.cfg
    e = cfg.etl
    ident = {
        "run_id": configs.run_id(s),
        "game": s.game,
        "dataset": s.dataset.name,
        "train_batch_size": int(s.batch_size),
        "train_noise": float(s.channel.p_max),
        "seed": int(s.random_seed),
        "checkpoint_step": int(speaker.step),
        "task": e.task,
        "etl_dataset": cfg.dataset.name,
        "etl_noise": float(e.noise),
        "decoding": e.decoding,
        "etl_seed": int(e.random_seed),
        "etl_steps": int(etl_steps),
    }
    rows = [{**ident, "metric": k, "value": float(v)} for k, v in metrics.items()]
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def reconstruction_grid(
    images: np.ndarray, reconstructions: np.ndarray, per_row: int = 8, gap: int = 2
) -> np.ndarray:
    """uint8 RGB grid: each test image with its reconstruction ([−1,1] → [0,255]) to its
    right; `per_row` pairs per row, `gap` white pixels between pairs."""
    recon = np.clip(np.rint((np.asarray(reconstructions) + 1.0) * 127.5), 0, 255).astype(np.uint8)
    n = len(images)
    rows = max(1, -(-n // per_row))
    h, w = IMAGE_SHAPE[:2]
    cell_w = 2 * w + gap
    grid = np.full((rows * (h + gap) + gap, per_row * cell_w + gap, 3), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, per_row)
        top, left = gap + r * (h + gap), gap + c * cell_w
        grid[top : top + h, left : left + w] = images[i]
        grid[top : top + h, left + w : left + 2 * w] = recon[i]
    return grid


def write_png(path: str | Path, grid: np.ndarray) -> Path:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(grid).save(buf, format="PNG")
    files.atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def write_results(df: pd.DataFrame, path: str | Path) -> Path:
    """CSV written under a temporary name, then renamed."""
    files.atomic_write_bytes(path, df.to_csv(index=False).encode())
    return Path(path)


def run_test(
    speaker: Speaker,
    listener_path: str | Path,
    data_dir: str | Path | None,
    png: str | Path | None = None,
    test_data: TaskData | None = None,
) -> pd.DataFrame:
    """Test a trained ETL listener → result rows (and the reconstruction PNG when asked)."""
    cfg, payload = load_listener(listener_path, speaker)
    e = cfg.etl
    if png and e.task != "reconstruction":
        raise ValueError(f"--png is for the reconstruction task, not {e.task!r}")
    data_dir = data_dir or cfg.dataset.data_dir or None
    data = test_data or load_task_split(
        e.task, cfg.dataset.name, "test", data_dir, speaker.feature_dim, speaker.cfg.dataset.name
    )
    params = jax.tree_util.tree_map(jnp.asarray, payload["listener"])
    out = evaluate_listener(
        cfg,
        speaker,
        params,
        int(payload["listener_vocab"]),
        int(payload["out_dim"]),
        data,
        payload.get("attribute_names"),
    )
    if png and out.images is not None:
        write_png(png, reconstruction_grid(out.images, out.reconstructions))
    return result_rows(cfg, speaker, int(payload["step"]), out.metrics)
