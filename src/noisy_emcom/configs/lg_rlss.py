"""LG(S): REINFORCE speaker, supervised InfoNCE listener. Sweep: `<dataset>`."""

from noisy_emcom.configs.common import game_config


def get_config(sweep: str = "imagenet"):
    return game_config("lg_rlss", sweep, 0.0)
