"""Config presets selected by the original's sweep strings, overridable, then resolved.

    cfg = get_config("nlg_rlrl", "imagenet_0.5", {"batch_size": 64})

Overrides are applied *before* derived values are resolved (listener vocabulary, value-MLP
sizes), exactly like `--config.batch_size=64` on the command line of the original.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import json
import math
import numbers
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import ml_collections

from noisy_emcom.configs import validate as validate_module
from noisy_emcom.configs.common import eval_config
from noisy_emcom.configs.validate import ConfigError, validate

__all__ = ["ConfigError", "get_config", "parse_cli", "resolve", "set_dotted", "validate"]

PRESETS = ("lg_rlss", "lg_rlrl", "nlg_rlrl", "etl")


def preset_name(spec: str) -> str:
    """`lg_rlrl`, `lg_rlrl_config.py` or `src/noisy_emcom/configs/lg_rlrl_config.py` → `lg_rlrl`."""
    name = Path(spec).name.removesuffix(".py").removesuffix("_config")
    if name not in PRESETS:
        raise ConfigError(
            "config", f"unknown config preset {spec!r}; expected one of {list(PRESETS)}"
        )
    return name


def get_config(
    preset: str, sweep: str, overrides: Mapping[str, Any] | None = None
) -> ml_collections.ConfigDict:
    """Preset `preset` for sweep string `sweep`, with dotted `overrides`, resolved."""
    module = importlib.import_module(f"noisy_emcom.configs.{preset_name(preset)}")
    try:
        cfg = module.get_config(sweep)
    except ValueError as err:
        raise ConfigError("config", str(err)) from err
    for key, value in (overrides or {}).items():
        set_dotted(cfg, key, value)
    given = {key: _get(cfg, key) for key in overrides or {} if not key.endswith("steps_per_call")}
    resolve(cfg)
    for key, value in given.items():
        if _get(cfg, key) != value:  # an explicit value that resolve() treats as "derive"
            raise validate_module.error(
                key, value, "is the preset's placeholder for a derived value; leave it out"
            )
    return cfg


def _get(cfg: ml_collections.ConfigDict, dotted: str) -> Any:
    for part in dotted.split("."):
        cfg = cfg[part]
    return cfg


def resolve(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Fill derived values (docs/config.md) and `validate`; returns the same object."""
    if cfg.get("experiment") == "etl":
        from noisy_emcom.configs import etl

        return validate(etl.resolve(cfg))
    if "listener" in cfg and "batch_size" in cfg:
        b, v = cfg.batch_size, cfg.vocab_size
        if not cfg.listener.vocab_size:
            cfg.listener.vocab_size = v + 1 if cfg.channel.type == "erasure" else v
        if not cfg.listener.value_hidden:
            cfg.listener.value_hidden = (max(b // 4, 4), max(b // 16, 2))
    return validate(cfg)


def fields(cfg: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
    """Every leaf field of `cfg`, dotted."""
    out = []
    for key, value in cfg.items():
        if isinstance(value, ml_collections.ConfigDict):
            out += fields(value, f"{prefix}{key}.")
        else:
            out.append(prefix + key)
    return out


def set_dotted(cfg: ml_collections.ConfigDict, dotted: str, value: Any) -> None:
    """cfg.a.b = value, coercing a string to the type of the existing field."""
    *parents, leaf = dotted.split(".")
    node = cfg
    for part in parents + [leaf]:
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            close = difflib.get_close_matches(dotted, fields(cfg), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(dotted, f"unknown config field {dotted!r}{hint}")
        parent, node = node, node[part]
    if isinstance(node, ml_collections.ConfigDict):
        raise ConfigError(dotted, f"config field {dotted!r} is a group; set one of its fields")
    parent[leaf] = coerce(value, node, dotted)


def coerce(value: Any, current: Any, field: str = "?") -> Any:
    """Convert `value` (often a command-line string) to the type of `current`.

    Strings become numbers with int()/float() and tuples with ast.literal_eval, which reads
    literals only and never runs code."""
    try:
        if isinstance(value, bool) and not isinstance(current, bool):
            raise ValueError(value)
        if isinstance(current, bool):
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(value)
                return value.lower() in ("true", "1")
            if not isinstance(value, int):
                raise ValueError(value)
            return bool(value)
        if isinstance(current, int):
            if not isinstance(value, (numbers.Real, str)):
                raise ValueError(value)
            if isinstance(value, numbers.Real) and not float(value).is_integer():
                raise ValueError(value)
            return int(value)
        if isinstance(current, float):
            if not isinstance(value, (numbers.Real, str)) or not math.isfinite(float(value)):
                raise ValueError(value)
            return float(value)
        if isinstance(current, (tuple, list)):
            if isinstance(value, str):
                value = ast.literal_eval(value)
            if not isinstance(value, Iterable) or isinstance(value, (str, bytes, Mapping)):
                value = (value,)
            return tuple(value)
        if isinstance(current, str):
            if not isinstance(value, (str, numbers.Real)):
                raise ValueError(value)
            return str(value)
    except (ValueError, TypeError, SyntaxError, OverflowError, RecursionError, MemoryError) as e:
        raise ConfigError(
            field, f"config field {field!r}: cannot use {value!r} as {type(current).__name__}"
        ) from e
    return value


CONFIG_HELP = (
    "PRESET:SWEEP, e.g. lg_rlrl:shapes_logits or nlg_rlrl:shapes_logits_0.5 (presets: "
    + ", ".join(sorted(PRESETS))
    + "); then --config.<field>=<value> overrides any field, e.g. --config.batch_size=64"
)


def split_overrides(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """`--config.x.y=v` (or `--config.x.y v`) → ({"x.y": "v"}, the remaining arguments)."""
    overrides, rest = {}, []
    args = iter(argv)
    for arg in args:
        if arg.startswith("--config."):
            key, eq, value = arg[len("--config.") :].partition("=")
            overrides[key] = value if eq else next(args, "")
        else:
            rest.append(arg)
    return overrides, rest


def from_spec(spec: str, overrides: dict[str, Any] | None = None) -> ml_collections.ConfigDict:
    """`<preset or file>:<sweep>` plus overrides → the resolved config."""
    preset, _, sweep = spec.partition(":")
    if not sweep:
        raise ConfigError(
            "config", f"--config={spec!r} needs a sweep after ':', e.g. lg_rlrl:imagenet"
        )
    return get_config(preset, sweep, overrides)


def with_dataset(spec: str, dataset: str) -> str:
    """`<preset>:<sweep>` with the sweep's dataset replaced by `dataset` (the `--dataset`
    argument of the scripts): `nlg_rlrl:debug_0.5` → `nlg_rlrl:mydata_0.5`."""
    preset, _, sweep = spec.partition(":")
    name = preset_name(preset)
    if name == "nlg_rlrl":
        return f"{preset}:{dataset}_{sweep.rpartition('_')[2] or sweep}"
    if name == "etl":
        task_noise = "_".join(sweep.rsplit("_", 2)[-2:])
        return f"{preset}:{dataset}_{task_noise}"
    return f"{preset}:{dataset}"


def parse_cli(argv: list[str]) -> tuple[ml_collections.ConfigDict, list[str]]:
    """Read `--config=<preset or file>:<sweep>` and `--config.x.y=v` from argv.

    Returns the resolved, validated config and the remaining arguments; a bad setting raises
    ConfigError naming the field.
    """
    overrides, argv = split_overrides(argv)
    spec, rest = None, []
    args = iter(argv)
    for arg in args:
        if arg.startswith("--config=") or arg == "--config":
            spec = arg.split("=", 1)[1] if "=" in arg else next(args, "")
        else:
            rest.append(arg)
    if spec is None:
        raise ConfigError(
            "config", "missing --config=<preset>:<sweep>, e.g. --config=lg_rlrl:shapes_logits"
        )
    return from_spec(spec, overrides), rest


def apply_eval_overrides(cfg: ml_collections.ConfigDict, overrides: Mapping[str, Any]) -> None:
    """Apply dotted `eval.*` overrides to a trained model's config in place, then resolve and
    validate it. Only the evaluation protocol can change at test time; fields an older
    version saved that the protocol no longer has (`eval.checkpoint`) are dropped first."""
    for stale in set(cfg.eval) - set(eval_config()):
        del cfg.eval[stale]
    for key, value in (overrides or {}).items():
        if not key.startswith("eval."):
            raise ConfigError(key, f"override {key!r}: only eval.* fields can change at test time")
        set_dotted(cfg, key, value)
    resolve(cfg)


def to_json(cfg: ml_collections.ConfigDict) -> str:
    return json.dumps(cfg.to_dict(), sort_keys=True, indent=1)


def from_json(text: str) -> ml_collections.ConfigDict:
    """Inverse of to_json (JSON lists become tuples again)."""

    def tuples(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: tuples(v) for k, v in node.items()}
        if isinstance(node, list):
            return tuple(tuples(v) for v in node)
        return node

    return ml_collections.ConfigDict(tuples(json.loads(text)))


def run_id(cfg: ml_collections.ConfigDict) -> str:
    """`<game>-<dataset>-b<B>-p<p_max>-s<seed>` (docs/config.md#run-ids-and-layout)."""
    return (
        f"{cfg.game}-{cfg.dataset.name}-b{cfg.batch_size}-p{float(cfg.channel.p_max)}"
        f"-s{cfg.random_seed}"
    )
