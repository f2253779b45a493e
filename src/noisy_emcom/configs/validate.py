"""Checks of every setting of a resolved config: types, bounds and enums (a JSON schema), then
the constraints between fields. `ConfigError` names the dotted field.

    validate(cfg)  # a game or ETL config, after `resolve`

The scripts call it through `configs.get_config`/`parse_cli`; the Snakemake DAG calls it for
every config it will run (`noisy_emcom.configs.workflow`).
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import ml_collections

from noisy_emcom.configs.common import GAMES

# Upper bounds keep a typo from allocating gigabytes (e.g. vocab_size 10^8 → a 10^8-wide head).
MAX_SEED = 2**31 - 1
MAX_BATCH = 65_536
MAX_STEPS = 10**9
MAX_WIDTH = 8192
MAX_VOCAB = 10_000
MAX_LENGTH = 256
MAX_COEF = 1e3


class ConfigError(ValueError, KeyError):
    """A bad config setting; `field` is its dotted name (e.g. `speaker.lstm_size`)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field

    def __str__(self) -> str:
        return str(self.args[0])


def error(field: str, value: Any, what: str) -> ConfigError:
    return ConfigError(field, f"config field {field!r} = {value!r}: {what}")


def _int(lo: int, hi: int) -> dict:
    return {"type": "integer", "minimum": lo, "maximum": hi}


def _num(lo: float, hi: float, above: bool = False, below: bool = False) -> dict:
    out = {"type": "number"}
    out["exclusiveMinimum" if above else "minimum"] = lo
    out["exclusiveMaximum" if below else "maximum"] = hi
    return out


def _enum(*values: str) -> dict:
    return {"enum": list(values)}


def _list(item: dict, lo: int = 1, hi: int = 64, unique: bool = False) -> dict:
    return {"type": "array", "items": item, "minItems": lo, "maxItems": hi, "uniqueItems": unique}


def _obj(**props: dict) -> dict:
    return {
        "type": "object",
        "properties": props,
        "required": list(props),
        "additionalProperties": False,
    }


SEED = _int(0, MAX_SEED)
STEPS = _int(1, MAX_STEPS)
WIDTH = _int(1, MAX_WIDTH)
COEF = _num(0, MAX_COEF)
PROB = _num(0, 1)
TEXT = {"type": "string"}
SCHEDULE = {
    "training_steps": STEPS,
    "steps_per_call": _int(1, 10**6),
    "log_every": STEPS,
    "checkpoint_every": STEPS,
    "keep_checkpoints": _int(1, 1000),
}


def _optimizer(*names: str, **extra: dict) -> dict:
    return _obj(
        name=_enum(*names),
        learning_rate=_num(0, 10, above=True),
        b1=_num(0, 1, below=True),
        b2=_num(0, 1, below=True),
        eps=_num(0, 1, above=True),
        **extra,
    )


EVAL = _obj(
    seed=SEED,
    repetitions=_int(1, 1000),
    epochs=_int(1, 1000),
    batch_sizes=_list(_int(2, MAX_BATCH), unique=True),
    decodings=_list(_enum("sample", "greedy"), unique=True),
    erasure_ps=_list(PROB, lo=0),
    substitution_ps=_list(PROB, lo=0),
    input_noise_coeffs=_list(_num(0, 100), lo=0),
    listener_views=_list(_enum("same", "independent"), lo=0, unique=True),
    mask_counts=_list(_int(0, MAX_LENGTH), lo=0, unique=True),
    max_mask_subsets=_int(1, 10**6),
    mask_seed=SEED,
    topsim_ratios=_list(_num(0, 1, above=True), lo=0),
    topsim_min_games=_int(1, 10**6),
    topsim_meanings=_list(_enum("inputs", "attributes"), lo=0, unique=True),
    unknown_token_policy=_enum("alias", "embed"),
)

# Built-in sweep names and user dataset names (known-ness is checked by the presets).
DATASET_NAME = {"type": "string", "pattern": r"^[a-z][a-z0-9_]*$"}
TRAIN_DATASET = _obj(
    name=DATASET_NAME,
    data_dir=TEXT,
    input_noise=_num(0, 100),
    file=TEXT,
    sha256={"type": "string", "pattern": "^([0-9a-f]{64})?$"},
)
TRAIN_DATASET["required"] = ["name", "data_dir", "input_noise"]  # older checkpoints lack the rest

GAME = _obj(
    experiment=_enum(*GAMES),
    game=_enum(*GAMES.values()),
    random_seed=SEED,
    dataset=TRAIN_DATASET,
    batch_size=_int(2, MAX_BATCH),
    vocab_size=_int(2, MAX_VOCAB),
    length=_int(1, MAX_LENGTH),
    **SCHEDULE,
    speaker=_obj(
        embed_dim=WIDTH,
        lstm_size=WIDTH,
        entropy_coef=COEF,
        value_coef=COEF,
        kl_coef=COEF,
        ema=PROB,
        target=_enum("copy", "original"),
        optimizer=_optimizer("adam"),
    ),
    listener=_obj(
        type=_enum("cpc", "rl"),
        embed_dim=WIDTH,
        lstm_size=WIDTH,
        hidden=WIDTH,
        vocab_size=_int(2, MAX_VOCAB + 1),
        value_hidden=_list(_int(1, MAX_BATCH), hi=8),
        critic_coef=COEF,
        entropy_coef=COEF,
        temperature=_num(0, MAX_COEF, above=True),
        optimizer=_optimizer("adam"),
    ),
    channel=_obj(
        type=_enum("identity", "erasure"),
        p_max=_num(0, 1, below=True),
        ramp_fraction=PROB,
    ),
    eval=EVAL,
)

ETL = _obj(
    experiment=_enum("etl"),
    dataset=_obj(name=DATASET_NAME, data_dir=TEXT),
    listener=_obj(embed_dim=WIDTH, lstm_size=WIDTH),
    eval=_obj(seed=SEED),
    etl=_obj(
        task=_enum(
            "discrimination", "discriminationdist", "classification", "attribute", "reconstruction"
        ),
        noise=_num(0, 1, below=True),
        decoding=_enum("sample", "greedy"),
        random_seed=SEED,
        batch_size=_int(2, MAX_BATCH),
        input_noise=_num(0, 100),
        optimizer=_optimizer("adam", "adamw", weight_decay=_num(0, 10), clip_norm=_num(0, 1e9)),
        head_hidden=WIDTH,
        rank_k=_int(1, MAX_BATCH),
        recon_latent=_list(WIDTH, lo=3, hi=3),
        recon_channels=_list(WIDTH, hi=6),
        eval_epochs=_int(1, 1000),
        erased_token_embedding=_enum("own", "alias"),
        **SCHEDULE,
    ),
)


def _schema_errors(schema: dict, data: dict) -> None:
    """Raise the first schema violation (top-level fields first) as a ConfigError."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: len(e.absolute_path))
    if not errors:
        return
    err = errors[0]
    path = [str(p) for p in err.absolute_path]
    while path and path[-1].isdigit():  # an item of a list: name the list
        path.pop()
    field = ".".join(path) or "<config>"
    if err.validator == "additionalProperties":
        raise ConfigError(field, f"config {field!r}: {err.message}")
    node: Any = data
    for part in path:
        node = node[part]
    raise error(field, node, err.message)


def _check_schedule(cfg: ml_collections.ConfigDict, prefix: str = "") -> None:
    """training_steps, log_every and checkpoint_every: multiples of the effective steps per
    dispatch, min(steps_per_call, training_steps)."""
    per_call = min(cfg.steps_per_call, cfg.training_steps)
    for name in ("training_steps", "log_every", "checkpoint_every"):
        if cfg[name] % per_call:
            raise error(
                prefix + name,
                cfg[name],
                f"must be a multiple of {prefix}steps_per_call = {per_call}",
            )


def validate(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Check every field of a resolved game or ETL config; returns `cfg`."""
    data = json.loads(json.dumps(cfg.to_dict()))  # tuples → lists for the schema
    if cfg.get("experiment") == "etl":
        _schema_errors(ETL, data)
        e = cfg.etl
        _check_schedule(e, "etl.")
        h, w, _ = e.recon_latent
        scale = 2 ** len(e.recon_channels)
        if (h * scale, w * scale) != (64, 64):
            raise error(
                "etl.recon_latent",
                tuple(e.recon_latent),
                f"height and width times 2^len(recon_channels) = {scale} must give 64x64",
            )
        return cfg
    _schema_errors(GAME, data)
    _check_schedule(cfg)
    ev = cfg.eval
    if max(ev.mask_counts, default=0) > cfg.length:
        raise error("eval.mask_counts", tuple(ev.mask_counts), f"at most length = {cfg.length}")
    if len(ev.topsim_ratios) != len(ev.batch_sizes):
        raise error(
            "eval.topsim_ratios",
            tuple(ev.topsim_ratios),
            f"needs one ratio per eval.batch_sizes entry ({len(ev.batch_sizes)})",
        )
    return cfg
