"""The Snakemake config, checked while the DAG is built: every job's script config is resolved
from the same command-line arguments the rule passes (`override_args`), with the same function
the script uses (`parse_cli`, `apply_eval_overrides`), then checked against the split sizes the
DAG knows. Errors name the key of the config file, e.g. `train.overrides.vocab_size`.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import ml_collections

from noisy_emcom import configs
from noisy_emcom.configs.etl import TASK_DATASETS
from noisy_emcom.configs.validate import ConfigError

PRESETS = {"lg_s": "lg_rlss", "lg_rl": "lg_rlrl", "nlg": "nlg_rlrl"}
# Fields the rules set from other keys (or that name the output folders): not overridable.
SET_BY_RULE = {
    "batch_size": "train.batch_sizes",
    "random_seed": "train.seeds",
    "channel.p_max": "train.nlg_noise",
    "dataset.name": "train.datasets",
    "dataset.data_dir": "data_dir",
    "dataset.file": "train.datasets",  # train.py records the table a run was trained on
    "dataset.sha256": "train.datasets",
    "experiment": "train.games",
    "game": "train.games",
}
SET_BY_ETL_RULE = {
    "etl.decoding": "etl.decodings",
    "etl.noise": "etl.noise",
    "etl.task": "etl.tasks",
    "dataset.name": "etl.tasks",
    "dataset.data_dir": "data_dir",
}


def family(dataset: str, own_names: Iterable[str] = ()) -> str:
    """imagenet | celeba | shapes, or a user dataset's own name: ETL runs on the datasets of
    a trained run's family."""
    return dataset if dataset in own_names else dataset.split("_")[0]


def id_number(value: Any, where: str) -> str:
    """A noise level as run ids and ETL folders write it, `str(float(value))`; a ConfigError
    naming `where` when that is not plain decimal (1e-05), which the rules' paths cannot match."""
    text = str(float(value))
    if not re.fullmatch(r"[0-9]+\.[0-9]+", text):
        raise ConfigError(where, f"{where}: {value} is written {text} in paths; use 0.0001 or more")
    return text


def format_override(value: Any) -> str:
    """A YAML value as the script reads it from the command line (lists as tuples)."""
    if isinstance(value, (list, tuple)):
        return repr(tuple(value))
    return str(value)


def override_args(mapping: Mapping[str, Any]) -> list[str]:
    """{'a.b': v} → ["--config.a.b=v"] (one argument each; the rules quote them)."""
    return [f"--config.{key}={format_override(value)}" for key, value in mapping.items()]


def train_args(config: Mapping, game: str, dataset: str, p: str, batch: Any, seed: Any) -> list:
    """Arguments of train.py for one run (after the script name)."""
    sweep = f"{dataset}_{p}" if game == "nlg" else dataset
    overrides = {**config["train"].get("overrides", {}), "batch_size": batch, "random_seed": seed}
    return [f"--config={PRESETS[game]}:{sweep}", *override_args(overrides)]


def etl_args(config: Mapping, etl_dataset: str, task: str, noise: str, decoding: str) -> list:
    """Arguments of etl_train.py for one ETL job: sweep and overrides."""
    e = config.get("etl", {})
    overrides = {
        **e.get("overrides", {}),
        **e.get("task_overrides", {}).get(task, {}),
        "etl.decoding": decoding,
    }
    return [f"--config=etl:{etl_dataset}_{task}_{noise}", *override_args(overrides)]


def split_sizes(config: Mapping, dataset: str, marker: Callable[[str], str]) -> dict[str, int]:
    """{split: examples} known before any job runs: the generated shapes data from the config's
    data section, other datasets from their dataset_info.json once it exists; else {}."""
    family = dataset.split("_")[0]
    data = config.get("data", {}).get(family, {})
    if (
        family == "shapes"
        and dataset not in config.get("own_data", {})
        and data.get("source", "generate") == "generate"
    ):
        return {s: data[f"num_{s}"] for s in ("train", "valid", "test") if f"num_{s}" in data}
    path = Path(marker(dataset))
    if not path.is_file():
        return {}
    try:
        splits = json.loads(path.read_text()).get("splits", [])
        return {
            s["name"]: int(s.get("numExamples") or sum(int(n) for n in s["shardLengths"]))
            for s in splits
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}  # a damaged file is the data rules' business


def _where(field: str, sections: list[tuple[str, Mapping]], fallback: str) -> str:
    """The config-file key of a field: the last section that sets it, else `fallback`."""
    for name, section in reversed(sections):
        if field in section:
            return f"{name}.{field}"
    return fallback


def _not_overridden(sections: list[tuple[str, Mapping]], set_by: Mapping[str, str]) -> None:
    for name, section in sections:
        for field in set_by.keys() & section.keys():
            where = f"{name}.{field}"
            raise ConfigError(where, f"{where}: set by {set_by[field]}, not by an override")


def runs(config: Mapping) -> Iterator[tuple[str, str, str, Any, Any]]:
    """(game, dataset, p, batch, seed) of every training run of the grid."""
    t = config["train"]
    for dataset, game, batch, seed in itertools.product(
        t["datasets"], t["games"], t["batch_sizes"], t["seeds"]
    ):
        for p in t.get("nlg_noise", [0.5]) if game == "nlg" else [0.0]:
            yield game, dataset, id_number(p, "train.nlg_noise"), batch, seed


def train_configs(config: Mapping) -> Iterator[tuple[str, str, ml_collections.ConfigDict]]:
    """(run id, dataset, resolved script config) of every training run, as the rule runs it;
    a ConfigError names the key of the config file and the job. User datasets must be
    registered first (`check_own`)."""
    overrides = config["train"].get("overrides", {})
    _not_overridden([("train.overrides", overrides)], SET_BY_RULE)
    for game, dataset, p, batch, seed in runs(config):
        run = f"{game}-{dataset}-b{batch}-p{p}-s{seed}"
        try:
            cfg, _ = configs.parse_cli(train_args(config, game, dataset, p, batch, seed))
        except ConfigError as err:
            raise _located(err, [("train.overrides", overrides)], "train.overrides", run) from err
        yield run, dataset, cfg


def _too_big(where: str, value: int, sizes: Mapping[str, int], split: str, dataset: str) -> None:
    n = sizes.get(split)
    if n is not None and value > n:
        raise ConfigError(where, f"{where}: {value} exceeds the {n} {split} examples of {dataset}")


TASK_FIELDS = {
    "discrimination": "logit",
    "discriminationdist": "logit",
    "classification": "label",
    "attribute": "attributes",
    "reconstruction": "image",
}


def own_fields(name: str, entry: Mapping) -> tuple[str, ...]:
    """Fields of the user dataset `own_data.<name>`, read from its table's header or its
    image folder; registers the dataset for the presets. A ConfigError names the key."""
    from noisy_emcom.data import own, registry
    from noisy_emcom.data.errors import DataError

    where = f"own_data.{name}"
    try:
        own.check_name(name, registry.RESERVED_NAMES)
        kind, path = own.source_of(entry)
        if kind == "table":
            fields = own.table_fields(path)
        else:
            fields = own.image_fields(path, entry.get("file_list") or None)
            if "label" not in fields and not entry.get("checkpoint"):
                raise DataError(
                    f"images without labels need a checkpoint (the BYOL ResNet-50): the "
                    f"small encoder is trained on the labels of {path}"
                )
    except DataError as err:
        raise ConfigError(where, f"{where}: {err}") from err
    registry.register(registry.user_spec(name, fields))
    return fields


def check_own(config: Mapping) -> dict[str, tuple[str, ...]]:
    """{user dataset: fields}; every dataset named in train.datasets and etl.tasks is a
    built-in or an own_data entry."""
    from noisy_emcom.data import registry

    fields = {n: own_fields(n, e) for n, e in config.get("own_data", {}).items()}
    tasks = config.get("etl", {}).get("tasks", {})
    for d, asked in tasks.items():
        if asked == "auto":  # every task the dataset's fields support
            have = fields.get(d)
            tasks[d] = [
                t
                for t in TASK_FIELDS
                if (TASK_FIELDS[t] in have if have is not None else d in TASK_DATASETS[t])
            ]
    named = [("train.datasets", d) for d in config["train"]["datasets"]]
    named += [(f"etl.tasks.{d}", d) for d in config.get("etl", {}).get("tasks", {})]
    for where, d in named:
        if d not in registry.DATASETS and d not in fields:
            raise ConfigError(
                where,
                f"{where}: unknown dataset {d!r}; built-in: {', '.join(registry.DATASETS)}; "
                f"own_data: {', '.join(fields) or 'none'}",
            )
    return fields


def check(config: Mapping, marker: Callable[[str], str]) -> None:
    """Resolve and check every job config of the DAG; raise ConfigError naming the key.

    `marker(dataset)` is the path of the dataset's dataset_info.json."""
    check_data(config)
    own = check_own(config)
    eval_overrides = config.get("eval_overrides", {})
    for run, dataset, cfg in train_configs(config):
        sizes = split_sizes(config, dataset, marker)
        _too_big("train.batch_sizes", cfg.batch_size, sizes, "train", dataset)
        try:
            test_cfg = configs.from_json(configs.to_json(cfg))
            parsed, _ = configs.split_overrides(override_args(eval_overrides))
            configs.apply_eval_overrides(test_cfg, parsed)
        except ConfigError as err:
            raise _located(
                err, [("eval_overrides", eval_overrides)], "eval_overrides", run
            ) from err
        for k in test_cfg.eval.batch_sizes:
            _too_big("eval_overrides.eval.batch_sizes", k, sizes, "test", dataset)
    check_etl(config, marker, own)


def check_etl(config: Mapping, marker: Callable[[str], str], own: Mapping = {}) -> None:  # noqa: B006
    e = config.get("etl", {})
    _not_overridden(
        [("etl.overrides", e.get("overrides", {}))]
        + [(f"etl.task_overrides.{t}", o) for t, o in e.get("task_overrides", {}).items()],
        SET_BY_ETL_RULE,
    )
    own_names = config.get("own_data", {})
    trained = {family(d, own_names) for d in config["train"]["datasets"]}
    for etl_dataset, tasks in e.get("tasks", {}).items():
        if family(etl_dataset, own_names) not in trained:
            where = f"etl.tasks.{etl_dataset}"
            raise ConfigError(
                where,
                f"{where}: no run is trained on {family(etl_dataset, own_names)!r} data "
                f"(train.datasets: {', '.join(config['train']['datasets'])}); ETL runs a "
                "trained speaker on datasets of its own family",
            )
        sizes = split_sizes(config, etl_dataset, marker)
        for task in tasks:
            if etl_dataset in own and TASK_FIELDS[task] not in own[etl_dataset]:
                where = f"etl.tasks.{etl_dataset}"
                raise ConfigError(
                    where,
                    f"{where}: dataset {etl_dataset} cannot run task {task!r}: it has no field "
                    f"{TASK_FIELDS[task]!r} (its fields: {', '.join(own[etl_dataset])})",
                )
            if etl_dataset not in own and etl_dataset not in TASK_DATASETS[task]:
                where = f"etl.tasks.{etl_dataset}"
                raise ConfigError(
                    where,
                    f"{where}: dataset {etl_dataset} cannot run task {task!r}; "
                    f"{task!r} needs one of {list(TASK_DATASETS[task])}",
                )
            sections = [
                ("etl.overrides", e.get("overrides", {})),
                (f"etl.task_overrides.{task}", e.get("task_overrides", {}).get(task, {})),
            ]
            for noise, decoding in itertools.product(
                e.get("noise", [0.0]), e.get("decodings", ["sample"])
            ):
                noise = id_number(noise, "etl.noise")
                job = f"{task} on {etl_dataset} at noise {noise}"
                try:
                    cfg, _ = configs.parse_cli(etl_args(config, etl_dataset, task, noise, decoding))
                except ConfigError as err:
                    raise _located(err, sections, "etl.overrides", job) from err
                where = _where("etl.batch_size", sections, "etl.overrides")
                for split in ("train", "test"):
                    _too_big(where, cfg.etl.batch_size, sizes, split, etl_dataset)


def check_data(config: Mapping) -> None:
    shapes = config.get("data", {}).get("shapes", {})
    encoder = shapes.get("encoder", {})
    if shapes.get("source", "generate") == "generate" and "batch_size" in encoder:
        sizes = {"train": shapes.get("num_train", encoder["batch_size"])}
        _too_big("data.shapes.encoder.batch_size", encoder["batch_size"], sizes, "train", "shapes")


def message(configfiles: list, err: Exception) -> str:
    """One line for the user: the config file(s), the key and what is wrong with it. A schema
    error (Snakemake's WorkflowError) is read from the jsonschema error it was raised from."""
    files = " ".join(map(str, configfiles)) or "config/config.yaml"
    cause = err.__context__
    if isinstance(cause, jsonschema.ValidationError):
        key = ".".join(str(p) for p in cause.absolute_path) or "<top level>"
        return f"error in config {files}: {key}: {cause.message}"
    return f"error in config {files}: {err}"


def _located(err: ConfigError, sections: list, fallback: str, job: str) -> ConfigError:
    where = _where(err.field, sections, fallback)
    return ConfigError(where, f"{where}: {err} (job: {job})")
