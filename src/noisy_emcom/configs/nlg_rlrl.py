"""NLG: LG(RL) over an erasure channel whose p ramps to p_max. Sweep: `<dataset>_<p_max>`."""

from noisy_emcom.configs.common import game_config


def get_config(sweep: str = "imagenet_0.5"):
    dataset, sep, p = sweep.rpartition("_")
    try:
        p_max = float(p)
    except ValueError:
        p_max = -1.0
    if not sep or not 0.0 <= p_max < 1.0:
        raise ValueError(
            f"nlg_rlrl sweep must be '<dataset>_<p_max>' with p_max in [0,1), got {sweep!r}"
        )
    return game_config("nlg_rlrl", dataset, p_max)
