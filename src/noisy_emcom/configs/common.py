"""Shared building blocks of the presets: defaults are the paper's values (docs/config.md)."""

from __future__ import annotations

import ml_collections

GAMES = {"lg_rlss": "lg_s", "lg_rlrl": "lg_rl", "nlg_rlrl": "nlg"}

# Sweep names the original's users know, plus the project's own `shapes*` and `debug`.
DATASETS = (
    "imagenet",
    "celeba_logits",
    "celeba_noimg",
    "celeba",
    "shapes_logits",
    "shapes_noimg",
    "shapes",
    "debug",
)


# A first useful run on a user dataset (docs/config.md#your-own-data): the fast preset of
# config/config.yaml, at batch 32, and tests at K up to 64 (a few hundred test examples).
OWN_DEFAULTS = {
    "training_steps": 12000,
    "batch_size": 32,
    "steps_per_call": 500,
    "log_every": 500,
    "checkpoint_every": 3000,
    "speaker.lstm_size": 64,
    "listener.lstm_size": 64,
    "listener.hidden": 64,
    "speaker.optimizer.learning_rate": 1e-3,
    "listener.optimizer.learning_rate": 1e-3,
    "eval.batch_sizes": (16, 64),
    "eval.topsim_ratios": (0.2, 0.2),
    "eval.epochs": 1,
    "eval.decodings": ("sample",),
}


def known_dataset(name: str) -> bool:
    """A built-in sweep name or a registered user dataset (`data.registry.register`)."""
    from noisy_emcom.data import registry

    return name in DATASETS or name in registry.USER_DATASETS


def unknown_dataset(name: str, where: str = "") -> str:
    return (
        f"unknown dataset {name!r}{where}; expected one of {list(DATASETS)} or a user dataset "
        "(own_data in the pipeline config; built under --data-dir for the scripts)"
    )


def adam(learning_rate: float) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        {"name": "adam", "learning_rate": learning_rate, "b1": 0.9, "b2": 0.999, "eps": 1e-8}
    )


def eval_config() -> ml_collections.ConfigDict:
    """Evaluation protocol of docs/tests.md (shared by every preset)."""
    return ml_collections.ConfigDict(
        {
            "seed": 42,
            "repetitions": 1,
            "epochs": 5,
            "batch_sizes": (16, 64, 256, 1024, 4096),
            "decodings": ("sample", "greedy"),
            "erasure_ps": (0.25, 0.5, 0.75),
            "substitution_ps": (0.25, 0.5, 0.75),
            "input_noise_coeffs": (1.0,),
            "listener_views": ("same", "independent"),
            "mask_counts": (0, 1, 2, 3, 4, 5),
            "max_mask_subsets": 10,
            "mask_seed": 42,
            "topsim_ratios": (0.2, 0.2, 0.2, 0.1, 0.02),
            "topsim_min_games": 10,
            "topsim_meanings": ("inputs", "attributes"),
            "unknown_token_policy": "alias",
        }
    )


def game_config(experiment: str, dataset: str, p_max: float) -> ml_collections.ConfigDict:
    """The full training config of one game (docs/science.md, docs/config.md)."""
    if experiment not in GAMES:
        raise ValueError(f"unknown experiment {experiment!r}; expected one of {sorted(GAMES)}")
    if not known_dataset(dataset):
        raise ValueError(unknown_dataset(dataset))
    noisy = experiment == "nlg_rlrl"
    cfg = ml_collections.ConfigDict(
        {
            "experiment": experiment,
            "game": GAMES[experiment],
            "random_seed": 0,
            # file / sha256: the table a model was trained on (set by train.py).
            "dataset": {
                "name": dataset,
                "data_dir": "",
                "input_noise": 0.0,
                "file": "",
                "sha256": "",
            },
            "batch_size": 1024,
            "vocab_size": 20,
            "length": 10,
            "training_steps": 750_000,
            "steps_per_call": 1000,
            "log_every": 1000,
            "checkpoint_every": 50_000,
            "keep_checkpoints": 2,
            "speaker": {
                "embed_dim": 10,
                "lstm_size": 256,
                "entropy_coef": 1e-4,
                "value_coef": 1.0,
                "kl_coef": 0.5,
                "ema": 0.99,
                # copy: target = copy of the online speaker, teacher-forced on its tokens;
                # original: the original code's target (docs/differences.md, D2).
                "target": "copy",
                "optimizer": adam(1e-4),
            },
            "listener": {
                "type": "cpc" if experiment == "lg_rlss" else "rl",
                "embed_dim": 10,
                "lstm_size": 512,
                "hidden": 256,
                # 0 / () mean "derive from vocab_size / batch_size" (see resolve()).
                "vocab_size": 0,
                "value_hidden": (),
                "critic_coef": 1e-3,
                "entropy_coef": 1e-4,
                "temperature": 1.0,
                "optimizer": adam(5e-5),
            },
            "channel": {
                "type": "erasure" if noisy else "identity",
                "p_max": p_max if noisy else 0.0,
                "ramp_fraction": 0.4,
            },
            "eval": eval_config(),
        }
    )
    if dataset not in DATASETS:
        from noisy_emcom.configs import set_dotted

        for key, value in OWN_DEFAULTS.items():
            set_dotted(cfg, key, value)
    if dataset == "debug":
        cfg.training_steps = 1
        cfg.batch_size = 8
        cfg.steps_per_call = 1
        cfg.log_every = 1
        cfg.checkpoint_every = 1
        cfg.eval.batch_sizes = (8,)
        cfg.eval.topsim_ratios = (0.2,)
        cfg.eval.epochs = 1
    return cfg
