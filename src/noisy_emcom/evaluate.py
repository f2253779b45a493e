"""The four tests of the paper and the redundancy measures, as tidy rows (docs/tests.md).

    model = restore_model("runs/<run_id>/final.ckpt")
    data = load_eval_data("shapes_logits", "data/")
    rows = run_test("channel", model, data)          # pandas DataFrame, one row per setting

Protocol (docs/tests.md#common-protocol), shared by every test:
- test order: epoch e of repetition r is the permutation of the `test` split drawn with
  fold_in(fold_in(fold_in(PRNGKey(eval_seed), r), 0), e); batches of exactly K, remainder
  dropped; the order depends on (eval_seed, r, K) only, so all settings, decodings, tests and
  models at one K are paired on the same candidate sets;
- batch keys: batch i of a setting (counted across epochs) uses
  fold_in(fold_in(fold_in(PRNGKey(eval_seed), r), 1 + h), i), h = ``language.setting_hash``
  of (test, eval_batch_size, channel, channel_p, masked_positions, input_noise,
  listener_view); the game splits it into (speaker, channel, listener, input-noise) keys;
- one jitted call runs all batches of all epochs of one setting (``lax.scan`` over batches);
  it is compiled once per (decoding, K, message-keeping) and reused by every setting, since
  channel parameters, masks, noise coefficient and view flag are traced arguments;
- the listener takes the argmax; accuracy = total correct / total games.

Unknown-token policy (docs/science.md#unknown-token-policy): a listener with V embeddings reads
id V as V−1 under ``alias``; under ``embed`` it gets one extra, never-trained row
(``networks.with_erased_token_row``). Listeners trained with V+1 embeddings (NLG) always use
their own row; the configured policy is still recorded in every row.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pandas as pd

from noisy_emcom import channels, configs, files, game, networks
from noisy_emcom import language as lang
from noisy_emcom.language import IDENTIFYING_COLUMNS
from noisy_emcom.progress import Progress

MODES = ("channel", "message", "input", "topsim", "measures")
TEST_NAMES = {
    "channel": "testchannel",
    "message": "testmessage",
    "input": "testinput",
    "topsim": "testtopsim",
    "measures": "measures",
}

METRIC_COLUMNS = lang.METRIC_COLUMNS
TOPSIM_COLUMNS: tuple[str, ...] = (
    "meaning",
    "message_stage",
    "topsim",
    "n_pairs_per_batch",
    "n_batches",
    "n_nan_batches",
)
MEASURE_COLUMNS: tuple[str, ...] = ("measure", "meaning", "message_stage", "position", "value")


def columns_for(mode: str) -> tuple[str, ...]:
    """Column order of the table a mode writes (identifying columns first)."""
    if mode in ("channel", "message", "input"):
        return (*IDENTIFYING_COLUMNS, *METRIC_COLUMNS)
    if mode == "topsim":
        return (*IDENTIFYING_COLUMNS, *METRIC_COLUMNS, *TOPSIM_COLUMNS)
    if mode == "measures":
        return (
            *IDENTIFYING_COLUMNS,
            *MEASURE_COLUMNS,
            "capacity_bits",
            "fano_bound",
            "fano_bound_tight",
        )
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def key_columns(mode: str) -> tuple[str, ...]:
    """Columns that identify a row of a mode's table: no two rows share them."""
    if mode == "topsim":
        return (*IDENTIFYING_COLUMNS, "meaning", "message_stage")
    if mode == "measures":
        return (*IDENTIFYING_COLUMNS, "measure", "meaning", "message_stage", "position")
    return IDENTIFYING_COLUMNS


# --------------------------------------------------------------------------------------------
# Model and data
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Model:
    """A restored speaker/listener pair ready for evaluation.

    ``nets`` are Haiku-style transforms (anything with ``.apply`` of the signatures in
    docs/interfaces.md); ``listener_params`` already carry the erased-token row under ``embed``.
    """

    cfg: ml_collections.ConfigDict
    nets: game.Nets
    speaker_params: Any
    listener_params: Any
    step: int


@dataclasses.dataclass(frozen=True)
class EvalData:
    """The `test` split: clean inputs [N, D] float32 and optional attributes [N, A] bool."""

    name: str
    inputs: np.ndarray
    attributes: np.ndarray | None = None


def build_model(
    cfg: ml_collections.ConfigDict, speaker_params: Any, listener_params: Any, step: int
) -> Model:
    """Networks of ``cfg`` with the unknown-token policy ``cfg.eval.unknown_token_policy``.

    Under ``embed`` a listener with V embeddings is rebuilt with V+1 and gets the row of
    ``networks.with_erased_token_row(params, cfg.random_seed)``; ``alias`` keeps V (id V is
    clamped to V−1 by the message encoder).
    """
    policy = cfg.eval.unknown_token_policy
    if policy not in ("alias", "embed"):
        raise ValueError(f"config field 'eval.unknown_token_policy' = {policy!r}: alias|embed")
    vocab = int(cfg.listener.vocab_size)
    if policy == "embed" and vocab == cfg.vocab_size:
        listener_params = networks.with_erased_token_row(listener_params, cfg.random_seed)
        vocab += 1
    return Model(
        cfg,
        _nets(configs.to_json(_eval_free(cfg)), vocab),
        speaker_params,
        listener_params,
        int(step),
    )


def _eval_free(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A copy of ``cfg`` without its ``eval`` block (what the networks and game depend on)."""
    arch = configs.from_json(configs.to_json(cfg))
    if "eval" in arch:
        del arch["eval"]
    return arch


@functools.lru_cache(maxsize=8)
def _nets(arch_json: str, listener_vocab: int) -> game.Nets:
    """Networks of an architecture, cached so that models of one architecture share the
    compiled runners."""
    arch = configs.from_json(arch_json)
    return game.Nets(networks.make_speaker(arch), networks.make_listener(arch, listener_vocab))


def apply_overrides(cfg: ml_collections.ConfigDict, overrides: dict[str, Any] | None) -> None:
    """Apply dotted ``eval.*`` overrides (e.g. {"eval.epochs": "1"}) in place, then validate.

    Only the evaluation protocol can change at test time; any other field names the model's
    training and is refused.
    """
    configs.apply_eval_overrides(cfg, overrides or {})


def restore_model(path: str | Path, overrides: dict[str, Any] | None = None) -> Model:
    """Read a training checkpoint once (``checkpoint.load_model``) and build the ``Model``."""
    from noisy_emcom import checkpoint

    cfg, speaker_params, listener_params, step = checkpoint.load_model(path)
    apply_overrides(cfg, overrides)
    return build_model(cfg, speaker_params, listener_params, step)


def feature_dim(model: Model) -> int:
    """The input width the model's speaker was trained on."""
    return int(np.shape(model.speaker_params["speaker/initial_state"]["w"])[0])


def check_width(model: Model, data: EvalData, trained: str) -> None:
    """Refuse test inputs of another width than the model's, naming both datasets."""
    from noisy_emcom.data.errors import DataError

    have, want = data.inputs.shape[1], feature_dim(model)
    if have != want:
        raise DataError(
            f"dataset {data.name!r} has features of width {have}, but the model was trained on "
            f"{trained!r} (width {want}); test it on {trained!r} or a table of width {want}"
        )


DEBUG_TEST_ROWS = (4096, 5120)
"""Rows of ``synthetic.clustered_features(5120, dim=32, n_clusters=64, seed=0)`` that form the
test split of the ``debug`` dataset (the debug preset trains on the first 4096)."""


def load_eval_data(dataset: str, data_dir: str | Path, with_attributes: bool = True) -> EvalData:
    """The `test` split of ``dataset`` through ``noisy_emcom.data.loader.load_split``.

    ``dataset`` is a sweep name, a .npz/.npy file (its stem names it in the rows) or ``debug``.
    Attributes are loaded when asked for and the dataset has them (the loader's DataError for
    the ``attributes`` field means it has none).
    """
    if dataset == "debug":
        from noisy_emcom import synthetic

        x, _ = synthetic.clustered_features(DEBUG_TEST_ROWS[1], dim=32, n_clusters=64, seed=0)
        return EvalData("debug", x[DEBUG_TEST_ROWS[0] :])
    from noisy_emcom.data import loader
    from noisy_emcom.data.own import file_label

    path = Path(dataset)
    name = file_label(path) if path.suffix in (".npz", ".npy") else str(dataset)
    data = loader.load_split(dataset, "test", str(data_dir), fields=("logit",))
    attributes = None
    if with_attributes:
        try:
            attributes = loader.load_split(dataset, "test", str(data_dir), fields=("attributes",))[
                "attributes"
            ]
        except (KeyError, ValueError):
            attributes = None
    return EvalData(name, np.asarray(data["logit"], np.float32), attributes)


# --------------------------------------------------------------------------------------------
# Settings, order and keys
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Setting:
    """One test setting at one K; unused fields are None (empty in the result files)."""

    test: str
    eval_batch_size: int
    channel: str  # identity | erasure | substitution | fixed_erasure
    channel_p: float | None = None
    n_masked: int | None = None
    masked_positions: str | None = None
    subset_index: int | None = None
    input_noise: float | None = None
    listener_view: str | None = None

    def hash(self) -> int:
        """The setting hash h (``language.setting_hash`` of this setting's fields)."""
        return lang.setting_hash(dataclasses.asdict(self))

    def channel_params(self, length: int) -> channels.ChannelParams:
        """The traced channel arguments of this setting (same structure for every channel)."""
        p = 0.0 if self.channel_p is None else float(self.channel_p)
        if self.channel == "identity":
            return channels.identity(length)
        if self.channel == "erasure":
            return channels.erasure(p, length)
        if self.channel == "substitution":
            return channels.substitution(p, length)
        if self.channel == "fixed_erasure":
            return channels.fixed_erasure(lang.parse_positions(self.masked_positions), length)
        raise ValueError(f"unknown channel {self.channel!r}")

    def capacity_bits(self, vocab_size: int, length: int) -> float:
        """Capacity of the message channel of this setting (input noise not counted)."""
        return lang.channel_capacity_bits(
            self.channel, self.channel_p or 0.0, self.n_masked or 0, vocab_size, length
        )


def channel_settings(ev: ml_collections.ConfigDict, k: int) -> list[Setting]:
    """docs/tests.md#channel-test: identity (p = 0); erasure at ``eval.erasure_ps``; substitution at
    ``eval.substitution_ps``."""
    out = [Setting("testchannel", k, "identity", 0.0)]
    out += [Setting("testchannel", k, "erasure", float(p)) for p in ev.erasure_ps]
    out += [Setting("testchannel", k, "substitution", float(p)) for p in ev.substitution_ps]
    return out


def message_settings(ev: ml_collections.ConfigDict, k: int, length: int) -> list[Setting]:
    """docs/tests.md#message-test: fixed erasure of each subset of ``language.mask_subsets``."""
    subsets = lang.mask_subsets(length, ev.mask_counts, ev.max_mask_subsets, ev.mask_seed)
    return [
        Setting("testmessage", k, "fixed_erasure", None, n, lang.format_positions(pos), index)
        for n, index, pos in subsets
    ]


def input_settings(ev: ml_collections.ConfigDict, k: int) -> list[Setting]:
    """docs/tests.md#input-test: coefficient × view × (identity, erasure at ``eval.erasure_ps``)."""
    out = []
    for c in ev.input_noise_coeffs:
        for view in ev.listener_views:
            if view not in ("same", "independent"):
                raise ValueError(f"config field 'eval.listener_views': unknown view {view!r}")
            out.append(
                Setting("testinput", k, "identity", 0.0, input_noise=float(c), listener_view=view)
            )
            out += [
                Setting(
                    "testinput", k, "erasure", float(p), input_noise=float(c), listener_view=view
                )
                for p in ev.erasure_ps
            ]
    return out


def topsim_settings(ev: ml_collections.ConfigDict, k: int) -> list[Setting]:
    """docs/tests.md#topsim-test: identity and erasure at ``eval.erasure_ps``."""
    out = [Setting("testtopsim", k, "identity", 0.0)]
    return out + [Setting("testtopsim", k, "erasure", float(p)) for p in ev.erasure_ps]


def topsim_games(ev: ml_collections.ConfigDict, k: int) -> int:
    """n_K = min(K, max(``eval.topsim_min_games``, ⌊K·ρ_K⌋)), ρ_K from ``eval.topsim_ratios``
    at the position of K in ``eval.batch_sizes``."""
    sizes, ratios = tuple(ev.batch_sizes), tuple(ev.topsim_ratios)
    if len(ratios) != len(sizes):
        raise ValueError(
            f"config field 'eval.topsim_ratios' has {len(ratios)} entries but "
            f"'eval.batch_sizes' has {len(sizes)}"
        )
    rho = ratios[sizes.index(k)]
    return int(min(k, max(int(ev.topsim_min_games), math.floor(k * rho))))


def order_key(eval_seed: int, repetition: int, epoch: int) -> jax.Array:
    """fold_in(fold_in(fold_in(PRNGKey(eval_seed), r), 0), e)."""
    key = jax.random.fold_in(jax.random.PRNGKey(eval_seed), repetition)
    return jax.random.fold_in(jax.random.fold_in(key, 0), epoch)


def setting_key(eval_seed: int, repetition: int, h: int) -> jax.Array:
    """fold_in(fold_in(PRNGKey(eval_seed), r), 1 + h); batch i then uses fold_in(·, i)."""
    key = jax.random.fold_in(jax.random.PRNGKey(eval_seed), repetition)
    return jax.random.fold_in(key, np.uint32(1 + h))


def eval_batches(n_items: int, k: int, eval_seed: int, repetition: int, epochs: int) -> np.ndarray:
    """Indices [epochs·⌊N/K⌋, K] int32 of the test batches, epoch after epoch."""
    if n_items < k:
        raise ValueError(
            f"config field 'eval.batch_sizes': K = {k} exceeds the {n_items} test examples"
        )
    n_batches = n_items // k
    perms = [
        np.asarray(jax.random.permutation(order_key(eval_seed, repetition, e), n_items))
        for e in range(epochs)
    ]
    return (
        np.stack([p[: n_batches * k].reshape(n_batches, k) for p in perms])
        .reshape(-1, k)
        .astype(np.int32)
    )


# --------------------------------------------------------------------------------------------
# The jitted runner
# --------------------------------------------------------------------------------------------


class BatchStats(NamedTuple):
    """Per-batch sums, each [n_batches]."""

    n_correct: jax.Array
    speaker_entropy: jax.Array  # Σ over games of the per-game mean token entropy (nats)
    listener_entropy: jax.Array  # Σ over games of H(softmax(scores)) (nats)
    n_erased: jax.Array  # number of received tokens equal to V


def _message_dtype(vocab_size: int):
    """Narrowest unsigned type holding ids 0..V (messages travel to the host in it)."""
    return jnp.uint8 if vocab_size < 255 else jnp.int32


def make_runner(cfg: ml_collections.ConfigDict, nets: game.Nets, decoding: str) -> Callable:
    """Jitted fn(speaker_params, listener_params, table[N,D], batches[M,K], key, channel,
    input_noise, independent_view) → (BatchStats, (sent [M,K,T], received [M,K,T])).

    Batch i (0..M−1) plays ``game.make_eval_batch`` on table[batches[i]] with key
    fold_in(key, i). Messages come back as uint8 (ids 0..V) and are only copied to the host
    when a test needs them. Compiled once per (K, M); runners are cached per
    (nets, V, decoding), so every test of a model in one process shares the compilations.
    """
    return _cached_runner(nets, int(cfg.vocab_size), decoding, configs.to_json(cfg))


@functools.lru_cache(maxsize=16)
def _cached_runner(nets: game.Nets, vocab: int, decoding: str, cfg_json: str) -> Callable:
    eval_batch = game.make_eval_batch(configs.from_json(cfg_json), nets, decoding)
    dtype = _message_dtype(vocab)

    def run(
        speaker_params, listener_params, table, batches, key, channel, input_noise, independent_view
    ):
        def body(carry, inputs):
            i, idx = inputs
            out = eval_batch(
                speaker_params,
                listener_params,
                table[idx],
                jax.random.fold_in(key, i),
                channel,
                input_noise,
                independent_view,
            )
            stats = BatchStats(
                jnp.sum(out.correct.astype(jnp.int32)),
                jnp.sum(out.speaker_entropy),
                jnp.sum(out.listener_entropy),
                jnp.sum((out.received == vocab).astype(jnp.int32)),
            )
            return carry, (stats, (out.sent.astype(dtype), out.received.astype(dtype)))

        steps = jnp.arange(batches.shape[0], dtype=jnp.uint32)
        _, (stats, messages) = jax.lax.scan(body, None, (steps, batches))
        return stats, messages

    return jax.jit(run)


class Outcome(NamedTuple):
    """Everything one (setting, decoding, repetition) produced on the host."""

    setting: Setting
    decoding: str
    repetition: int
    batches: np.ndarray  # [M, K] indices into the test split
    stats: BatchStats  # numpy, each [M]
    messages: tuple  # () or (sent [M,K,T], received [M,K,T]) numpy


def sweep(
    model: Model,
    data: EvalData,
    settings_for: Callable[[int], Sequence[Setting]],
    keep_messages: bool = False,
    repetitions: Sequence[int] | None = None,
    epochs: int | None = None,
) -> Iterator[Outcome]:
    """Run every setting of ``settings_for(K)`` for each repetition, K and decoding.

    The test split is put on the device once; one runner per decoding is compiled once per K.
    """
    cfg, ev = model.cfg, model.cfg.eval
    table = jax.device_put(np.asarray(data.inputs, np.float32))
    runners = {d: make_runner(_eval_free(cfg), model.nets, d) for d in ev.decodings}
    reps = range(int(ev.repetitions)) if repetitions is None else repetitions
    n_epochs = int(ev.epochs) if epochs is None else epochs
    plan = {int(k): list(settings_for(int(k))) for k in ev.batch_sizes}
    total = len(reps) * len(ev.decodings) * sum(len(s) for s in plan.values())
    test = next((s[0].test for s in plan.values() if s), "")
    meter = Progress(test, total, "settings")
    for r in reps:
        for k, settings in plan.items():
            batches = eval_batches(table.shape[0], k, int(ev.seed), r, n_epochs)
            batches_dev = jax.device_put(batches)
            for decoding in ev.decodings:
                for setting in settings:
                    key = setting_key(int(ev.seed), r, setting.hash())
                    stats, messages = runners[decoding](
                        model.speaker_params,
                        model.listener_params,
                        table,
                        batches_dev,
                        key,
                        setting.channel_params(cfg.length),
                        np.float32(setting.input_noise or 0.0),
                        np.bool_(setting.listener_view == "independent"),
                    )
                    stats = BatchStats(*jax.device_get(stats))
                    messages = (
                        tuple(np.asarray(m, np.int32) for m in jax.device_get(messages))
                        if keep_messages
                        else ()
                    )
                    yield Outcome(setting, decoding, r, batches, stats, messages)
                    meter.update(note=f"K={k}, {decoding}, repetition {r}")


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------


def model_columns(model: Model, data: EvalData) -> dict[str, Any]:
    """Model-identifying columns: run_id, game, dataset (the evaluated one), train_batch_size,
    train_noise (p_max), seed, checkpoint_step, unknown_token_policy, eval_seed, n_epochs."""
    cfg = model.cfg
    return {
        "run_id": configs.run_id(cfg),
        "game": cfg.game,
        "dataset": data.name,
        "train_batch_size": int(cfg.batch_size),
        "train_noise": float(cfg.channel.p_max),
        "seed": int(cfg.random_seed),
        "checkpoint_step": int(model.step),
        "unknown_token_policy": cfg.eval.unknown_token_policy,
        "eval_seed": int(cfg.eval.seed),
        "n_epochs": int(cfg.eval.epochs),
    }


def bound_columns(setting: Setting, vocab_size: int, length: int) -> dict[str, float]:
    """capacity_bits, fano_bound, fano_bound_tight of a setting at its K."""
    c = setting.capacity_bits(vocab_size, length)
    k = setting.eval_batch_size
    return {
        "capacity_bits": c,
        "fano_bound": lang.fano_bound(c, k),
        "fano_bound_tight": lang.fano_bound_tight(c, k),
    }


def accuracy_row(model: Model, data: EvalData, out: Outcome) -> dict[str, Any]:
    """Identifying and metric columns of one outcome.

    accuracy = Σ correct / (M·K); accuracy_batch_std = population std (ddof 0) of the per-batch
    accuracies; speaker_entropy = mean over games of the mean over t of H(π_t) (nats);
    listener_entropy = mean over games of H(softmax(scores)) (nats); erased_fraction = share
    of received tokens equal to V.
    """
    cfg = model.cfg
    k = out.setting.eval_batch_size
    n_batches = out.batches.shape[0]
    n_games = n_batches * k
    n_correct = int(np.sum(out.stats.n_correct))
    return {
        **model_columns(model, data),
        **dataclasses.asdict(out.setting),
        "decoding": out.decoding,
        "repetition": out.repetition,
        "n_games": n_games,
        "n_correct": n_correct,
        "accuracy": n_correct / n_games,
        "accuracy_batch_std": float(np.std(out.stats.n_correct / k)),
        "speaker_entropy": float(np.sum(out.stats.speaker_entropy) / n_games),
        "listener_entropy": float(np.sum(out.stats.listener_entropy) / n_games),
        "erased_fraction": float(np.sum(out.stats.n_erased) / (n_games * cfg.length)),
        **bound_columns(out.setting, cfg.vocab_size, cfg.length),
    }


def tidy(rows: list[dict[str, Any]], mode: str) -> pd.DataFrame:
    """Rows → DataFrame with the mode's columns in order, nullable integer and string types,
    checked for duplicate keys."""
    cols = columns_for(mode)
    df = pd.DataFrame(rows)
    for c in cols:
        if c not in df.columns:
            df[c] = None
    df = df[list(cols)]
    for c in cols:
        if c in lang.INT_COLUMNS:
            df[c] = pd.array(
                [
                    None if v is None or (isinstance(v, float) and math.isnan(v)) else int(v)
                    for v in df[c]
                ],
                dtype="Int64",
            )
        elif c in lang.STR_COLUMNS:
            df[c] = df[c].astype("string")
        else:
            df[c] = pd.to_numeric(df[c], errors="raise").astype("float64")
    keys = list(key_columns(mode))
    dup = df.duplicated(subset=keys, keep=False)
    if dup.any():
        raise ValueError(f"{mode}: {int(dup.sum())} rows share their identifying columns")
    return df


# --------------------------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------------------------


def _accuracy_test(model: Model, data: EvalData, settings_for, mode: str) -> pd.DataFrame:
    rows = [accuracy_row(model, data, out) for out in sweep(model, data, settings_for)]
    return tidy(rows, mode)


def run_testchannel(model: Model, data: EvalData) -> pd.DataFrame:
    """docs/tests.md#channel-test: one row per K × channel setting × decoding × repetition."""
    return _accuracy_test(model, data, lambda k: channel_settings(model.cfg.eval, k), "channel")


def run_testmessage(model: Model, data: EvalData) -> pd.DataFrame:
    """docs/tests.md#message-test: one row per K × erased subset × decoding × repetition."""
    length = model.cfg.length
    return _accuracy_test(
        model, data, lambda k: message_settings(model.cfg.eval, k, length), "message"
    )


def run_testinput(model: Model, data: EvalData) -> pd.DataFrame:
    """docs/tests.md#input-test: one row per K × coefficient × view × channel × decoding × rep."""
    return _accuracy_test(model, data, lambda k: input_settings(model.cfg.eval, k), "input")


def _meanings(model: Model, data: EvalData) -> list[str]:
    wanted = tuple(model.cfg.eval.topsim_meanings)
    for m in wanted:
        if m not in ("inputs", "attributes"):
            raise ValueError(f"config field 'eval.topsim_meanings': unknown meaning {m!r}")
    return [m for m in wanted if m == "inputs" or data.attributes is not None]


def _meaning_table(data: EvalData, meaning: str) -> np.ndarray:
    return data.inputs if meaning == "inputs" else data.attributes


def _topsim_values(
    messages: np.ndarray, batches: np.ndarray, n_games: int, meaning_distances: np.ndarray
) -> np.ndarray:
    """Topsim of the first n_games messages [M,K,T] of each batch: [M] (NaN where undefined)."""
    d_m = lang.batched_message_distances(messages[:, :n_games])
    return lang.spearman_rows(d_m, meaning_distances)


def _topsim_columns(values: np.ndarray, n_games: int, meaning: str, stage: str) -> dict:
    finite = values[~np.isnan(values)]
    return {
        "meaning": meaning,
        "message_stage": stage,
        "topsim": float(finite.mean()) if finite.size else float("nan"),
        "n_pairs_per_batch": n_games * (n_games - 1) // 2,
        "n_batches": int(values.size),
        "n_nan_batches": int(values.size - finite.size),
    }


class _MeaningCache:
    """Meaning distances per (K, repetition, meaning): shared by every channel and decoding."""

    def __init__(self, data: EvalData):
        self.data, self.store = data, {}

    def get(self, batches: np.ndarray, n_games: int, meaning: str, key) -> np.ndarray:
        if (key, meaning) not in self.store:
            table = _meaning_table(self.data, meaning)
            self.store[(key, meaning)] = lang.batched_meaning_distances(
                table[batches[:, :n_games]], meaning
            )
        return self.store[(key, meaning)]


def run_testtopsim(model: Model, data: EvalData) -> pd.DataFrame:
    """docs/tests.md#topsim-test: post-channel topsim, per K × channel × meaning × decoding × rep.

    In each batch the first n_K games (``topsim_games``) are used; the value is the mean over
    batches ignoring NaN, with ``n_nan_batches``. Accuracy columns are filled as well.
    """
    ev = model.cfg.eval
    meanings = _meanings(model, data)
    cache = _MeaningCache(data)
    rows = []
    for out in sweep(model, data, lambda k: topsim_settings(ev, k), keep_messages=True):
        k = out.setting.eval_batch_size
        n_games = topsim_games(ev, k)
        base = accuracy_row(model, data, out)
        for meaning in meanings:
            d_u = cache.get(out.batches, n_games, meaning, (k, out.repetition))
            values = _topsim_values(out.messages[1], out.batches, n_games, d_u)
            rows.append({**base, **_topsim_columns(values, n_games, meaning, "post_channel")})
    return tidy(rows, "topsim")


def _measure_row(
    ids: dict[str, Any],
    measure: str,
    value: float,
    position: int | None = None,
    meaning: str | None = None,
    stage: str | None = None,
) -> dict[str, Any]:
    return {
        **ids,
        "measure": measure,
        "meaning": meaning,
        "message_stage": stage,
        "position": position,
        "value": float(value),
    }


def language_measures(model: Model, data: EvalData) -> list[dict[str, Any]]:
    """Pre-channel topsim (every repetition, the topsim test's protocol) and the token entropies and
    uniqueness (repetition 0, first epoch: each test item once, remainder dropped), per K and
    decoding, on clean messages of the identity channel (``test = measures``)."""
    ev = model.cfg.eval
    meanings = _meanings(model, data)
    cache = _MeaningCache(data)
    n_batches_epoch = {int(k): data.inputs.shape[0] // int(k) for k in ev.batch_sizes}
    rows = []

    def settings_for(k: int) -> list[Setting]:
        return [Setting("measures", k, "identity", 0.0)]

    for out in sweep(model, data, settings_for, keep_messages=True):
        k = out.setting.eval_batch_size
        ids = {
            **model_columns(model, data),
            **dataclasses.asdict(out.setting),
            "decoding": out.decoding,
            "repetition": out.repetition,
            **bound_columns(out.setting, model.cfg.vocab_size, model.cfg.length),
        }
        sent = out.messages[0]
        n_games = topsim_games(ev, k)
        for meaning in meanings:
            d_u = cache.get(out.batches, n_games, meaning, (k, out.repetition))
            values = _topsim_values(sent, out.batches, n_games, d_u)
            cols = _topsim_columns(values, n_games, meaning, "pre_channel")
            rows.append(_measure_row(ids, "topsim", cols["topsim"], None, meaning, "pre_channel"))
            rows.append(
                _measure_row(
                    ids, "topsim_nan_batches", cols["n_nan_batches"], None, meaning, "pre_channel"
                )
            )
        if out.repetition != 0:
            continue
        first = sent[: n_batches_epoch[k]].reshape(-1, model.cfg.length)
        h = lang.position_entropies(first)
        for t, value in enumerate(h):
            rows.append(_measure_row(ids, "position_entropy", value, t, None, "pre_channel"))
        for name, value in (
            ("mean_position_entropy", h.mean()),
            ("unigram_entropy", lang.unigram_entropy(first)),
            ("unique_message_ratio", lang.unique_message_ratio(first)),
            ("n_messages", first.shape[0]),
        ):
            rows.append(_measure_row(ids, name, value, None, None, "pre_channel"))
    return rows


def redundancy_measures(
    message_rows: pd.DataFrame, length: int, vocab_size: int
) -> list[dict[str, Any]]:
    """Redundancy measures from message-test rows: A_K(n) mean/min/max/normalised
    (``n_masked`` = n, with the bounds of fixed erasure of n positions), R_K (``redundancy``),
    Δ_K(t) (``erasure_sensitivity``), w_t (``erasure_weight``) and N_eff
    (``effective_positions``)."""
    if message_rows.empty:
        return []
    group = [
        c
        for c in IDENTIFYING_COLUMNS
        if c in message_rows.columns
        and c not in lang.SUBSET_COLUMNS
        and c not in ("channel", "channel_p", "test")
    ]
    rows = []

    def ids_of(record: dict[str, Any]) -> dict[str, Any]:
        ids = {c: record[c] for c in group}
        ids = {
            c: (None if v is pd.NA or (isinstance(v, float) and math.isnan(v)) else v)
            for c, v in ids.items()
        }
        return {**ids, "test": "measures", "channel": "fixed_erasure"}

    def bounds(n: int, k: int) -> dict[str, float]:
        c = lang.channel_capacity_bits("fixed_erasure", 0.0, n, vocab_size, length)
        return {
            "capacity_bits": c,
            "fano_bound": lang.fano_bound(c, k),
            "fano_bound_tight": lang.fano_bound_tight(c, k),
        }

    for rec in lang.accuracy_vs_erased(message_rows, group).to_dict("records"):
        n, k = int(rec["n_masked"]), int(rec["eval_batch_size"])
        ids = {**ids_of(rec), "n_masked": n, **bounds(n, k)}
        for stat in ("mean", "min", "max", "norm"):
            rows.append(_measure_row(ids, f"accuracy_erased_{stat}", rec[f"accuracy_{stat}"]))
    for rec in lang.redundancy_summary(message_rows, group).to_dict("records"):
        rows.append(_measure_row(ids_of(rec), "redundancy", rec["redundancy"]))
    sens = lang.position_sensitivity(message_rows, length, group)
    for rec in sens.to_dict("records"):
        k = int(rec["eval_batch_size"])
        ids = {**ids_of(rec), "n_masked": 1, **bounds(1, k)}
        rows.append(_measure_row(ids, "erasure_sensitivity", rec["delta"], int(rec["position"])))
        rows.append(_measure_row(ids, "erasure_weight", rec["weight"], int(rec["position"])))
    for rec in sens[sens["position"] == 0].to_dict("records"):
        rows.append(_measure_row(ids_of(rec), "effective_positions", rec["n_eff"]))
    return rows


def run_measures(
    model: Model, data: EvalData, message_rows: pd.DataFrame | None = None
) -> pd.DataFrame:
    """All measures (docs/tests.md) of one model; ``message_rows`` (a ``testmessage`` table of the
    same model) feeds A_K(n), R_K, Δ and N_eff, and is computed here with ``run_testmessage``
    when not given."""
    if message_rows is None:
        message_rows = run_testmessage(model, data)
    own = configs.run_id(model.cfg)
    others = sorted(set(message_rows["run_id"].astype(str)) - {own}) if len(message_rows) else []
    if others:
        raise ValueError(f"message-test rows of run(s) {others} given for the measures of {own}")
    rows = language_measures(model, data)
    rows += redundancy_measures(message_rows, model.cfg.length, model.cfg.vocab_size)
    return tidy(rows, "measures")


def run_test(
    mode: str, model: Model, data: EvalData, message_rows: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Dispatch on ``mode`` ∈ MODES (``message_rows`` only for ``measures``)."""
    if mode == "channel":
        return run_testchannel(model, data)
    if mode == "message":
        return run_testmessage(model, data)
    if mode == "input":
        return run_testinput(model, data)
    if mode == "topsim":
        return run_testtopsim(model, data)
    if mode == "measures":
        return run_measures(model, data, message_rows)
    raise ValueError(f"--mode must be one of {MODES}, got {mode!r}")


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def write_table(df: pd.DataFrame, out_csv: str | Path) -> tuple[Path, Path]:
    """Write ``out_csv`` and the Parquet file beside it (same stem), each atomically.

    The Parquet file is written first, so a CSV present means both are complete.
    """
    out_csv = Path(out_csv)
    if out_csv.suffix != ".csv":
        raise ValueError(f"--out must end in .csv, got {out_csv}")
    out_parquet = out_csv.with_suffix(".parquet")
    files.atomic_write(out_parquet, lambda p: df.to_parquet(p, index=False))
    files.atomic_write(out_csv, lambda p: df.to_csv(p, index=False))
    return out_csv, out_parquet


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a result table (``.csv`` or ``.parquet``; a CSV's Parquet twin is preferred)."""
    path = Path(path)
    twin = path.with_suffix(".parquet")
    if path.suffix == ".parquet" or twin.exists():
        return pd.read_parquet(twin if path.suffix != ".parquet" else path)
    return pd.read_csv(path, dtype={"masked_positions": "string"})


__all__ = [
    "MODES",
    "METRIC_COLUMNS",
    "TOPSIM_COLUMNS",
    "MEASURE_COLUMNS",
    "IDENTIFYING_COLUMNS",
    "Model",
    "EvalData",
    "Setting",
    "BatchStats",
    "Outcome",
    "build_model",
    "restore_model",
    "apply_overrides",
    "load_eval_data",
    "columns_for",
    "key_columns",
    "channel_settings",
    "message_settings",
    "input_settings",
    "topsim_settings",
    "topsim_games",
    "order_key",
    "setting_key",
    "eval_batches",
    "make_runner",
    "sweep",
    "accuracy_row",
    "tidy",
    "run_testchannel",
    "run_testmessage",
    "run_testinput",
    "run_testtopsim",
    "language_measures",
    "redundancy_measures",
    "run_measures",
    "run_test",
    "write_table",
    "read_table",
]
