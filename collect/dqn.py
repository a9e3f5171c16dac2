"""The collector agent's Q-network: the Nature DQN torso with a dueling head."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass(frozen=True)
class QNetworkConfig:
    n_actions: int = field(default=4, metadata={"help": "actions of the minimal action set"})
    stack: int = field(default=4, metadata={"help": "frames per observation"})
    hidden: int = field(default=512, metadata={"help": "width of each dueling stream"})


class QNetwork(nn.Module):
    """(B, 4, 84, 84) uint8 observations -> (B, n_actions) Q-values: V(s) + A(s, a) - mean_a A(s, a)."""

    def __init__(self, config: QNetworkConfig = QNetworkConfig()):
        super().__init__()
        self.config = config
        self.torso = nn.Sequential(
            nn.Conv2d(config.stack, 32, 8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(),
            nn.Flatten(),  # (B, 64 * 7 * 7)
        )
        self.value = nn.Sequential(nn.Linear(3136, config.hidden), nn.ReLU(), nn.Linear(config.hidden, 1))
        self.advantage = nn.Sequential(nn.Linear(3136, config.hidden), nn.ReLU(),
                                       nn.Linear(config.hidden, config.n_actions))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        assert obs.shape[1:] == (self.config.stack, 84, 84), f"expected (B, {self.config.stack}, 84, 84), got {obs.shape}"
        features = self.torso(obs.float() / 255.0)
        advantage = self.advantage(features)
        return self.value(features) + advantage - advantage.mean(dim=1, keepdim=True)
