"""The hold-out split: one rule for demonstrations (whole episodes), preference streams and
rankings (prompts). A fraction of the units is held out, at least one when there are two or
more and the fraction is positive; with none held out, held-out figures are measured on the
training data and say so (NO_HOLDOUT)."""

import numpy as np

NO_HOLDOUT = "none — measured on training data"  # a held-out figure's block when nothing was held out


def holdout_count(num: int, frac: float) -> int:
    """How many of `num` units are held out: round(num·frac), at least 1 and at most num − 1."""
    return min(num - 1, max(1, round(num * frac))) if frac > 0 else 0


def split_units(key, num: int, frac: float):
    """(training units, held-out units): the units 0 … num−1 in the order of a random
    permutation drawn with `key`, its first `holdout_count` held out."""
    import jax

    perm = np.asarray(jax.random.permutation(key, num))
    n_hold = holdout_count(num, frac)
    return perm[n_hold:], perm[:n_hold]


def split_rows(episode_lengths, frac: float, key):
    """(train rows, held-out rows, held-out episodes) of rows laid out episode after episode
    (or stream after stream): whole episodes held out by `split_units`. With nothing to hold
    out, the held-out rows are None."""
    if episode_lengths is None:  # a schema 1 dataset: no episode boundaries
        return None, None, 0
    _, held = split_units(key, len(episode_lengths), frac)
    episode_of_row = np.repeat(np.arange(len(episode_lengths)), episode_lengths)
    if not len(held):
        return np.arange(len(episode_of_row)), None, 0
    is_held = np.isin(episode_of_row, held)
    return np.flatnonzero(~is_held), np.flatnonzero(is_held), len(held)
