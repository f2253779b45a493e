"""LG(RL): REINFORCE speaker and RL listener, noiseless channel. Sweep: `<dataset>`."""

from noisy_emcom.configs.common import game_config


def get_config(sweep: str = "imagenet"):
    return game_config("lg_rlrl", sweep, 0.0)
