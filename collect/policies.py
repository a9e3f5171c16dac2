"""Policies that play the real game for recording. Each picks an action from the observation."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from worldmodel.breakout import ACTION_MEANINGS


class Policy(Protocol):
    name: str

    def act(self, obs: np.ndarray, rng: np.random.Generator) -> int: ...


class RandomPolicy:
    """Uniform over the minimal action set."""

    name = "random"

    def act(self, obs: np.ndarray, rng: np.random.Generator) -> int:
        return int(rng.integers(len(ACTION_MEANINGS)))


POLICIES = {"random": RandomPolicy}


def make_policy(name: str) -> Policy:
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; choose from {', '.join(POLICIES)}")
    return POLICIES[name]()
