"""Config presets selected by the original's sweep strings, overridable, then resolved.

    cfg = get_config("nlg_rlrl", "imagenet_0.5", {"batch_size": 64})

Overrides are applied *before* derived values are resolved (listener vocabulary, value-MLP
sizes), exactly like `--config.batch_size=64` on the command line of the original.
"""

from __future__ import annotations

import ast
import importlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import ml_collections

PRESETS = ("lg_rlss", "lg_rlrl", "nlg_rlrl", "etl")


def preset_name(spec: str) -> str:
    """`lg_rlrl`, `lg_rlrl_config.py` or `src/noisy_emcom/configs/lg_rlrl_config.py` → `lg_rlrl`."""
    name = Path(spec).name.removesuffix(".py").removesuffix("_config")
    if name not in PRESETS:
        raise ValueError(f"unknown config preset {spec!r}; expected one of {list(PRESETS)}")
    return name


def get_config(
    preset: str, sweep: str, overrides: Mapping[str, Any] | None = None
) -> ml_collections.ConfigDict:
    """Preset `preset` for sweep string `sweep`, with dotted `overrides`, resolved."""
    module = importlib.import_module(f"noisy_emcom.configs.{preset_name(preset)}")
    cfg = module.get_config(sweep)
    for key, value in (overrides or {}).items():
        set_dotted(cfg, key, value)
    return resolve(cfg)


def resolve(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Fill derived values (docs/config.md) and check ranges; returns the same object."""
    if cfg.get("experiment") == "etl":
        from noisy_emcom.configs import etl

        return etl.resolve(cfg)
    if "listener" in cfg and "batch_size" in cfg:
        b, v = cfg.batch_size, cfg.vocab_size
        if not cfg.listener.vocab_size:
            cfg.listener.vocab_size = v + 1 if cfg.channel.type == "erasure" else v
        if not cfg.listener.value_hidden:
            cfg.listener.value_hidden = (max(b // 4, 4), max(b // 16, 2))
    _check(cfg)
    return cfg


def _check(cfg: ml_collections.ConfigDict) -> None:
    def need(ok: bool, field: str, what: str) -> None:
        if not ok:
            raise ValueError(f"config field {field!r} = {_get(cfg, field)!r}: {what}")

    if "batch_size" in cfg:
        need(cfg.batch_size >= 2, "batch_size", "must be an integer >= 2")
    if "channel" in cfg:
        need(0.0 <= cfg.channel.p_max < 1.0, "channel.p_max", "must lie in [0, 1)")
        need(cfg.channel.type in ("identity", "erasure"), "channel.type", "identity|erasure")
        need(0.0 <= cfg.channel.ramp_fraction <= 1.0, "channel.ramp_fraction", "must be in [0,1]")
    if "vocab_size" in cfg:
        need(cfg.vocab_size >= 2, "vocab_size", "must be >= 2")
        need(cfg.length >= 1, "length", "must be >= 1")
    if "training_steps" in cfg:
        need(cfg.training_steps >= 1, "training_steps", "must be >= 1")
    if "eval" in cfg:
        policy = cfg.eval.unknown_token_policy
        need(policy in ("alias", "embed"), "eval.unknown_token_policy", "alias|embed")
        for d in cfg.eval.decodings:
            need(d in ("sample", "greedy"), "eval.decodings", "entries must be sample|greedy")


def _get(cfg: ml_collections.ConfigDict, dotted: str) -> Any:
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def set_dotted(cfg: ml_collections.ConfigDict, dotted: str, value: Any) -> None:
    """cfg.a.b = value, coercing a string to the type of the existing field."""
    *parents, leaf = dotted.split(".")
    node = cfg
    for part in parents:
        if part not in node:
            raise KeyError(f"unknown config field {dotted!r} (no {part!r})")
        node = node[part]
    if leaf not in node:
        raise KeyError(f"unknown config field {dotted!r}")
    node[leaf] = coerce(value, node[leaf], dotted)


def coerce(value: Any, current: Any, field: str = "?") -> Any:
    """Convert `value` (often a command-line string) to the type of `current`."""
    try:
        if isinstance(current, bool):
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(value)
                return value.lower() in ("true", "1")
            return bool(value)
        if isinstance(current, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value) if not isinstance(value, str) else int(value)
        if isinstance(current, float):
            return float(value)
        if isinstance(current, (tuple, list)):
            if isinstance(value, str):
                value = ast.literal_eval(value)
            if not isinstance(value, Iterable) or isinstance(value, (str, bytes)):
                value = (value,)
            return tuple(value)
        if isinstance(current, str):
            return str(value)
    except (ValueError, SyntaxError) as err:
        raise ValueError(
            f"config field {field!r}: cannot use {value!r} as {type(current).__name__}"
        ) from err
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
        raise ValueError(f"--config={spec!r} needs a sweep after ':', e.g. lg_rlrl:imagenet")
    return get_config(preset, sweep, overrides)


def parse_cli(argv: list[str]) -> tuple[ml_collections.ConfigDict, list[str]]:
    """Read `--config=<preset or file>:<sweep>` and `--config.x.y=v` from argv.

    Returns the resolved config and the remaining arguments.
    """
    overrides, argv = split_overrides(argv)
    spec, rest = None, []
    args = iter(argv)
    for arg in args:
        if arg.startswith("--config=") or arg == "--config":
            spec = arg.split("=", 1)[1] if "=" in arg else next(args)
        else:
            rest.append(arg)
    if spec is None:
        raise ValueError("missing --config=<preset>:<sweep>, e.g. --config=lg_rlrl:shapes_logits")
    return from_spec(spec, overrides), rest


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
