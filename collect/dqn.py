"""The collector agent's Q-network: the Nature DQN torso with a dueling head."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from worldmodel.checkpoint import load_checkpoint, load_weights

AGENT_KIND = "dqn-agent"


@dataclass(frozen=True)
class QNetworkConfig:
    n_actions: int = field(default=4, metadata={"help": "actions of the minimal action set"})
    stack: int = field(default=4, metadata={"help": "frames per observation"})
    width: int = field(default=16, metadata={"help": "channels of the first conv (Nature DQN: 32); the others scale"})
    hidden: int = field(default=256, metadata={"help": "width of each dueling stream (Nature DQN: 512)"})


class QNetwork(nn.Module):
    """(B, 4, 84, 84) uint8 observations -> (B, n_actions) Q-values: V(s) + A(s, a) - mean_a A(s, a).

    The Nature DQN torso at half width by default: on a 2-core CPU a gradient step takes ~10 ms
    instead of ~28 ms (channels-last), so three times as many updates fit in the training budget.
    """

    def __init__(self, config: QNetworkConfig = QNetworkConfig()):
        super().__init__()
        self.config = config
        w = config.width
        self.torso = nn.Sequential(
            nn.Conv2d(config.stack, w, 8, stride=4), nn.ReLU(),
            nn.Conv2d(w, 2 * w, 4, stride=2), nn.ReLU(),
            nn.Conv2d(2 * w, 2 * w, 3, stride=1), nn.ReLU(),
            nn.Flatten(),  # (B, 2w * 7 * 7)
        )
        features = 2 * w * 7 * 7
        self.value = nn.Sequential(nn.Linear(features, config.hidden), nn.ReLU(), nn.Linear(config.hidden, 1))
        self.advantage = nn.Sequential(nn.Linear(features, config.hidden), nn.ReLU(),
                                       nn.Linear(config.hidden, config.n_actions))
        self.to(memory_format=torch.channels_last)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        assert obs.shape[1:] == (self.config.stack, 84, 84), f"expected (B, {self.config.stack}, 84, 84), got {obs.shape}"
        # channels-last while still uint8 (4x less to copy), then scale in place
        x = obs.contiguous(memory_format=torch.channels_last).float().mul_(1.0 / 255.0)
        features = self.torso(x)
        advantage = self.advantage(features)
        return self.value(features) + advantage - advantage.mean(dim=1, keepdim=True)


class RNDNetwork(nn.Module):
    """Random Network Distillation feature net: one normalized 84x84 frame -> (B, 256) features."""

    def __init__(self, width: int = 16, out: int = 256, predictor: bool = False):
        super().__init__()
        layers = [
            nn.Conv2d(1, width, 8, stride=4), nn.LeakyReLU(),
            nn.Conv2d(width, 2 * width, 4, stride=2), nn.LeakyReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, stride=1), nn.LeakyReLU(),
            nn.Flatten(), nn.Linear(2 * width * 49, out),
        ]
        if predictor:  # the predictor gets more capacity than the fixed target (Burda et al.)
            layers += [nn.ReLU(), nn.Linear(out, out), nn.ReLU(), nn.Linear(out, out)]
        self.net = nn.Sequential(*layers)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        assert frames.shape[1:] == (1, 84, 84), f"expected (B, 1, 84, 84), got {frames.shape}"
        return self.net(frames)


def load_agent(path: str | Path) -> QNetwork:
    """The Q-network of an agent checkpoint (`agent export` or `train agent` writes one), in eval mode."""
    payload = load_checkpoint(path, AGENT_KIND)
    q_net = QNetwork(QNetworkConfig(**payload["config"]))
    weights = {k: v.float() if v.is_floating_point() else v for k, v in payload["state"]["weights"].items()}
    load_weights(q_net, weights, path)
    return q_net.eval()
