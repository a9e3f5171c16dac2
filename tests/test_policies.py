"""Policies that play from RGB frames: the ball tracker, the agent wrapper, the record options."""

import numpy as np
import pytest

from collect.atari import make_env
from collect.dqn import QNetwork, QNetworkConfig
from collect.policies import AgentPolicy, TrackerPolicy, make_policy
from collect.record import RecordConfig, episode_policy, record
from test_cli import run
from train.agent import AgentConfig, export_agent
from worldmodel.breakout import FIRE


def play(policy, steps, seed=0):
    env = make_env(max_episode_steps=steps)
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    policy.reset()
    score, actions = 0.0, []
    done = False
    while not done:
        action = policy.act(obs, rng, info)
        actions.append(action)
        obs, reward, terminated, truncated, info = env.step(action)
        score += reward
        done = terminated or truncated
    return score, actions, info


def test_tracker_landing_prediction_reflects_off_walls():
    # moving right and down by (4, 4) from x=140: 40 rows to go -> 40 px right, reflected off the right wall
    assert TrackerPolicy.landing_x((136, 145), (140, 149)) == pytest.approx(2 * 150 - 180)
    assert TrackerPolicy.landing_x(None, (70, 100)) == 70.0


def test_tracker_beats_random_and_keeps_its_lives():
    tracker_score, actions, info = play(TrackerPolicy(), 600)
    random_score, _, random_info = play(make_policy("random"), 600)
    assert tracker_score > random_score + 10
    assert info["lives"] >= random_info["lives"]
    assert actions[:3].count(FIRE) >= 1  # launches the ball


@pytest.fixture(scope="module")
def agent_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("agent") / "agent.pt"
    config = AgentConfig.tiny(str(path.parent))
    return export_agent(QNetwork(QNetworkConfig(width=config.width, hidden=config.hidden)), config, {}, path)


def test_agent_policy_fires_at_each_life_and_acts_from_frames(agent_checkpoint):
    policy = AgentPolicy(str(agent_checkpoint))
    frame = np.zeros((210, 160, 3), np.uint8)
    rng = np.random.default_rng(0)
    assert policy.act(frame, rng, {"lives": 5}) == FIRE
    assert len(policy.stack) == 4 and policy.stack[0].shape == (84, 84)
    policy.no_ball = -100  # pretend a ball is in play so FIRE comes only from a lost life
    assert policy.act(frame, rng, {"lives": 5}) in range(4)
    assert policy.act(frame, rng, {"lives": 4}) == FIRE
    policy.reset()
    assert len(policy.stack) == 0 and policy.lives is None


def test_episode_mix_follows_the_fractions():
    config = RecordConfig(out="x", policy="agent", random_fraction=0.2, tracker_fraction=0.5)
    names = [episode_policy(config, seed) for seed in range(2000)]
    assert abs(names.count("random") / 2000 - 0.2) < 0.03
    assert abs(names.count("tracker") / 2000 - 0.5) < 0.03


def test_record_option_errors(tmp_path, agent_checkpoint):
    with pytest.raises(ValueError, match="needs --checkpoint"):
        record(RecordConfig(out=str(tmp_path / "a"), policy="agent"), progress=False)
    with pytest.raises(ValueError, match="add up to more than 1"):
        record(RecordConfig(out=str(tmp_path / "a"), random_fraction=0.7, tracker_fraction=0.7), progress=False)
    with pytest.raises(ValueError, match="--epsilon must be between 0 and 1"):
        record(RecordConfig(out=str(tmp_path / "a"), epsilon=2.0), progress=False)
    result = run("record", "--policy", "agent", "--checkpoint", str(tmp_path / "missing.pt"), "--out",
                 str(tmp_path / "b"))
    assert result.returncode == 2 and "missing.pt" in result.stderr
