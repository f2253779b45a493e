"""ETL preset (docs/etl.md): new listeners on a frozen speaker's language.

Sweep: `<dataset>_<task>_<noise>`.

The sweep is split from the right, since dataset names contain underscores:
`shapes_noimg_attribute_0.5` → dataset `shapes_noimg`, task `attribute`, noise 0.5.

Fields left at their "derive" value (0, -1.0 or "") are filled by `resolve` after the
command-line overrides, from the task and dataset (docs/config.md#etl-preset-etl):
`training_steps` 10,000 (30,000 for `classification` on CelebA), `batch_size` 128 (4,096 for
`discriminationdist`), `input_noise` 0.5 for `discrimination*` (else 0), the optimiser
(Adam 1e-3; `reconstruction`: clip by global norm 500 then AdamW 3e-4, β = (0.9, 0.9),
weight decay 0.01). The speaker (vocabulary, length, feature width) comes from its checkpoint.
"""

from __future__ import annotations

import ml_collections

from noisy_emcom.configs.common import known_dataset, unknown_dataset

TASKS = ("discrimination", "discriminationdist", "classification", "attribute", "reconstruction")
DECODINGS = ("sample", "greedy")
ERASED_EMBEDDINGS = ("own", "alias")
# Registry datasets that have the fields each task needs (docs/etl.md).
TASK_DATASETS = {
    "discrimination": ("imagenet", "celeba_logits", "shapes_logits"),
    "discriminationdist": ("imagenet", "celeba_logits", "shapes_logits"),
    "classification": ("imagenet", "celeba_noimg", "shapes_noimg"),
    "attribute": ("celeba_noimg", "shapes_noimg"),
    "reconstruction": ("celeba", "shapes"),
}


def parse_sweep(sweep: str) -> tuple[str, str, float]:
    """`<dataset>_<task>_<noise>` → (dataset, task, noise), split from the right."""
    rest, sep1, noise_text = sweep.rpartition("_")
    dataset, sep2, task = rest.rpartition("_")
    try:
        noise = float(noise_text)
    except ValueError:
        noise = -1.0
    if not (sep1 and sep2) or task not in TASKS or not 0.0 <= noise < 1.0:
        raise ValueError(
            f"etl sweep must be '<dataset>_<task>_<noise>' with task in {list(TASKS)} and "
            f"noise in [0,1), e.g. 'shapes_noimg_attribute_0.0'; got {sweep!r}"
        )
    if not known_dataset(dataset):
        raise ValueError(unknown_dataset(dataset, " in etl sweep"))
    return dataset, task, noise


def get_config(sweep: str = "shapes_logits_discrimination_0.0") -> ml_collections.ConfigDict:
    dataset, task, noise = parse_sweep(sweep)
    return ml_collections.ConfigDict(
        {
            "experiment": "etl",
            "dataset": {"name": dataset, "data_dir": ""},
            # The new listener's message encoder (docs/science.md#listener-message-encoder).
            "listener": {"embed_dim": 10, "lstm_size": 512},
            "eval": {"seed": 42},
            "etl": {
                "task": task,
                "noise": noise,
                "decoding": "sample",
                "random_seed": 0,
                "training_steps": 0,  # 0: derive
                "batch_size": 0,  # 0: derive
                "input_noise": -1.0,  # < 0: derive
                "optimizer": {
                    "name": "",  # "": derive (adam | adamw)
                    "learning_rate": 0.0,  # 0: derive
                    "b1": 0.9,
                    "b2": 0.0,  # 0: derive
                    "eps": 1e-8,
                    "weight_decay": -1.0,  # < 0: derive
                    "clip_norm": -1.0,  # < 0: derive; 0 = no clipping
                },
                "head_hidden": 256,
                "rank_k": 5,
                "recon_latent": (4, 4, 128),
                "recon_channels": (64, 32, 16, 16),
                "eval_epochs": 1,
                "log_every": 100,
                "steps_per_call": 100,
                "checkpoint_every": 1000,
                "keep_checkpoints": 2,
                "erased_token_embedding": "own",
            },
        }
    )


def resolve(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Fill the derived `etl.*` values; returns the same object (`configs.resolve` then
    validates it)."""
    e = cfg.etl
    recon = e.task == "reconstruction"
    if e.training_steps == 0:
        celeba = cfg.dataset.name.startswith("celeba")
        e.training_steps = 30_000 if e.task == "classification" and celeba else 10_000
    if e.batch_size == 0:
        e.batch_size = 4096 if e.task == "discriminationdist" else 128
    if e.input_noise < 0:
        e.input_noise = 0.5 if e.task.startswith("discrimination") else 0.0
    o = e.optimizer
    if not o.name:
        o.name = "adamw" if recon else "adam"
    if o.learning_rate == 0.0:
        o.learning_rate = 3e-4 if recon else 1e-3
    if o.b2 == 0.0:
        o.b2 = 0.9 if recon else 0.999
    if o.weight_decay < 0:
        o.weight_decay = 0.01 if recon else 0.0
    if o.clip_norm < 0:
        o.clip_norm = 500.0 if recon else 0.0
    per_call = min(e.steps_per_call, e.training_steps)
    if per_call >= 1:
        e.steps_per_call = per_call
    return cfg
