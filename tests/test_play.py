"""The playable game: the action map, NeuralBreakout-v0, `play`, `rollout` and `evaluate play`."""

import json
import os
import subprocess
import sys

import gymnasium
import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import worldmodel
from test_cli import _one_line_error, run
from worldmodel.action_map import ACTION_MAP_KIND, ActionMap, ActionMapConfig, class_counts, load_action_map
from worldmodel.breakout import parse_frame
from worldmodel.checkpoint import CheckpointError, save_checkpoint
from worldmodel.env import NeuralBreakoutEnv, load_start_states
from worldmodel.errors import NeuralBreakoutError
from worldmodel.lam import one_hot_blocks


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny world model, action map and start bank trained by the CLI on 4 short tracker episodes."""
    root = tmp_path_factory.mktemp("play")
    data, wm, am = root / "data", root / "wm", root / "am"
    for args in (("record", "--episodes", "4", "--policy", "tracker", "--max-steps", "40", "--out", str(data)),
                 ("train", "world-model", "--data", str(data), "--out", str(wm), "--tiny", "--event-codes", "2",
                  "--event-head"),
                 ("train", "action-map", "--data", str(data), "--world-model", str(wm / "world_model.pt"),
                  "--out", str(am), "--tiny", "--serves")):
        result = run(*args, "--quiet")
        assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert 0 <= summary["held_out_accuracy"] <= 1 and summary["start_states"] == 3
    assert summary["held_out_serve_transitions"] > 0  # tracker episodes begin with no ball in play
    assert set(summary["held_out_serve_accuracy_by_action"]) <= {"NOOP", "FIRE", "RIGHT", "LEFT"}
    return dict(data=data, checkpoint=wm / "world_model.pt", action_map=am / "action_map.pt",
                start_states=am / "start_states.npz")


def make(models, **kwargs) -> NeuralBreakoutEnv:
    return NeuralBreakoutEnv(models["checkpoint"], models["action_map"], models["start_states"], **kwargs)


def model_args(models) -> list[str]:
    return ["--checkpoint", str(models["checkpoint"]), "--action-map", str(models["action_map"]),
            "--start-states", str(models["start_states"])]


def test_class_counts_match_one_hot_blocks():
    ids = torch.randint(0, 5, (3, 2, 210, 160), dtype=torch.uint8)
    expected = one_hot_blocks(ids, 5).view(3, 10, 16, 53, 40).sum(2) / 16
    assert torch.allclose(class_counts(ids, 5), expected)


def test_action_map_shapes_and_gradients():
    torch.manual_seed(0)
    model = ActionMap(ActionMapConfig(classes=4, context=2, codes=8, width=8, hidden=16))
    context = torch.randint(0, 4, (5, 2, 210, 160), dtype=torch.uint8)
    assert model(context).shape == (5, 4, 8)
    loss, metrics = model.loss(context, torch.tensor([0, 1, 2, 3, 0]), torch.tensor([1, 2, 3, 4, 5]))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    probs = model.probabilities(context, torch.tensor([0, 1, 2, 3, 0]))
    assert probs.shape == (5, 8) and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_action_map_labels_events_by_their_codes(models):
    """With event codes, the action map learns the codes the decoder was trained on: a serve's and a
    lost life's own codes (from RAM), the nearest free code elsewhere."""
    from train.action_map import label_latents
    from train.world_model import WorldModelTrainConfig, load_split, ram_events
    from worldmodel.world_model import load_world_model

    world_model = load_world_model(models["checkpoint"])
    assert world_model.config.event_head and world_model.encoder.event_head is not None
    assert world_model.config.event_codes == 2 and load_action_map(models["action_map"]).config.codes == world_model.config.codes
    train, _ = load_split(WorldModelTrainConfig.tiny(str(models["data"]), "unused", max_episodes=4, holdout_every=2),
                          world_model.table, progress=False)
    _, events = ram_events(train, str(models["data"]))
    index = np.arange(len(train))
    latent = label_latents(world_model, train, index, False, "", events)
    free = world_model.config.codes - 2
    assert (events == 0).any() and (latent[events == 0] == free).all() and (latent[events == 1] == free + 1).all()
    assert (latent[events < 0] < free).all()


def test_action_map_and_env_on_an_event_input_model(tmp_path, models):
    """A world model with the event input (`--event-input`) has four times its codes as latents: the
    map is trained on them, labelled with the events read from the frames, and the env plays it."""
    from train.action_map import label_latents
    from train.world_model import WorldModelTrainConfig, load_split, pixel_events, ram_serves
    from worldmodel.world_model import load_world_model

    base = ("--data", str(models["data"]), "--tiny", "--quiet")
    plain = run("train", "world-model", *base, "--out", str(tmp_path / "wm"))
    assert plain.returncode == 0, plain.stderr
    served = run("train", "world-model", *base, "--out", str(tmp_path / "si"), "--event-input", "--init",
                 str(tmp_path / "wm" / "world_model.pt"), "--serve-share", "0.5")
    assert served.returncode == 0, served.stderr
    checkpoint = tmp_path / "si" / "world_model.pt"
    mapped = run("train", "action-map", *base, "--world-model", str(checkpoint), "--out", str(tmp_path / "am"), "--serves")
    assert mapped.returncode == 0, mapped.stderr
    world_model = load_world_model(checkpoint)
    codes = world_model.config.codes
    assert load_action_map(tmp_path / "am" / "action_map.pt").config.codes == world_model.config.latents == 4 * codes
    train, _ = load_split(WorldModelTrainConfig.tiny(str(models["data"]), "unused", max_episodes=4, holdout_every=2),
                          world_model.table, progress=False)
    serves = ram_serves(train, str(models["data"]))[1]
    latent = label_latents(world_model, train, np.arange(len(train)), False, "", inputs=pixel_events(train, 2))
    assert serves.any() and (latent[serves] // codes % 2 == 1).all() and (latent[~serves] // codes % 2 == 0).all()
    env = NeuralBreakoutEnv(checkpoint, tmp_path / "am" / "action_map.pt", tmp_path / "am" / "start_states.npz")
    check_env(env, skip_render_check=True)
    env.reset(seed=0)
    assert 0 <= env.step(1)[-1]["latent_action"] < 4 * codes
    # --life-head: the odds of a lost life come from the context alone, the same for every action
    headed = run("train", "action-map", *base, "--world-model", str(checkpoint), "--out", str(tmp_path / "al"),
                 "--serves", "--life-head")
    assert headed.returncode == 0, headed.stderr
    env = NeuralBreakoutEnv(checkpoint, tmp_path / "al" / "action_map.pt", tmp_path / "al" / "start_states.npz")
    env.reset(seed=0)
    life = [env.latent_probabilities(a)[2 * codes:].sum() for a in range(4)]
    assert np.allclose(life, life[0], atol=1e-6) and 0 < life[0] < 1
    # --serve-head: only FIRE serves, with odds from the context; --lives-digit reads the lives digit
    served = run("train", "action-map", *base, "--world-model", str(checkpoint), "--out", str(tmp_path / "as"),
                 "--serves", "--life-head", "--serve-head", "--lives-digit")
    assert served.returncode == 0, served.stderr
    env = NeuralBreakoutEnv(checkpoint, tmp_path / "as" / "action_map.pt", tmp_path / "as" / "start_states.npz")
    env.reset(seed=0)
    probs = [env.latent_probabilities(a).reshape(4, codes) for a in range(4)]  # (serve + 2 * life, code)
    assert all(p[[1, 3]].sum() == 0 for a, p in enumerate(probs) if a != 1) and 0 < probs[1][[1, 3]].sum() < 1
    assert np.allclose([p[2:].sum() for p in probs], probs[0][2:].sum(), atol=1e-6)
    assert 0 <= env.step(1)[-1]["latent_action"] < 4 * codes
    lone = run("train", "action-map", *base, "--world-model", str(checkpoint), "--out", str(tmp_path / "ay"),
               "--serve-head")
    assert lone.returncode == 2 and "--serve-head needs --life-head" in lone.stderr
    # --memory: the life and serve odds are counted per state of the ball's memory, which the env tracks
    remembered = run("train", "action-map", *base, "--world-model", str(checkpoint), "--out", str(tmp_path / "am2"),
                     "--serves", "--life-head", "--serve-head", "--memory")
    assert remembered.returncode == 0, remembered.stderr
    table = json.loads(remembered.stdout.splitlines()[-1])["memory_table"]
    assert table["in play"]["transitions"] > 0 and table["in play"]["lives_lost"] == table["in play"]["waiting"] == 0
    assert table["waiting"]["waiting"] == table["waiting"]["transitions"] > 0
    env = NeuralBreakoutEnv(checkpoint, tmp_path / "am2" / "action_map.pt", tmp_path / "am2" / "start_states.npz")
    bank = env.start_states
    empty = bank["frames"][list(bank["kind"]).index("game start")]  # no ball yet: the game waits for FIRE
    env.reset(options={"frames": empty})
    assert env._memory.phase == "waiting"
    probs = [env.latent_probabilities(a).reshape(4, codes) for a in range(4)]
    assert probs[1][[1, 3]].sum() > 0.9 and all(p[[1, 3]].sum() == 0 for a, p in enumerate(probs) if a != 1)
    assert probs[1][2:].sum() < 0.1  # no life is lost while the game waits
    env.reset(options={"frames": bank["frames"][list(bank["kind"]).index("in game")]})
    assert env._memory.phase == "play" and env.latent_probabilities(1).reshape(4, codes)[[1, 3]].sum() < 0.1
    # game over: a life taken while the counter shows 1 ends the game (no recorded frame shows 0)
    certain_loss = np.zeros(4 * codes)
    certain_loss[2 * codes] = 1.0  # code 0, no serve, life lost
    env.latent_probabilities = lambda action: certain_loss
    for lives, over in ((3, False), (1, True)):
        env.reset(options={"frames": empty})
        env._lives = lives
        *_, terminated, truncated, info = env.step(0)
        assert terminated is over and info["latent_action"] == 2 * codes and (info["lives"] == 0) is over
    bare = run("train", "action-map", *base, "--world-model", str(checkpoint), "--out", str(tmp_path / "az"),
               "--life-head", "--memory")
    assert bare.returncode == 2 and "--memory needs --serve-head" in bare.stderr
    unfit = run("train", "action-map", *base, "--world-model", str(tmp_path / "wm" / "world_model.pt"), "--out",
                str(tmp_path / "ax"), "--life-head")
    assert unfit.returncode == 2 and "--life-head needs a world model with the event input" in unfit.stderr


def test_action_map_with_a_longer_context(tmp_path, models):
    """`train action-map --context 3` on a 2-frame world model: the map reads 3 frames, the world model
    its 2, the start bank holds 3, and the event figures are reported."""
    out = tmp_path / "am3"
    result = run("train", "action-map", "--data", str(models["data"]), "--world-model", str(models["checkpoint"]),
                 "--out", str(out), "--tiny", "--context", "3", "--presence", "--quiet")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary["held_out_event_recall"]) <= {"serve", "life lost"}
    assert 0 <= summary["held_out_false_event_rate"] <= 1 and "--context 3" in summary["training_command"]
    action_map = load_action_map(out / "action_map.pt")
    assert action_map.config.context == 3 and action_map.config.presence and load_start_states(out / "start_states.npz")["frames"].shape[1] == 3
    env = NeuralBreakoutEnv(models["checkpoint"], out / "action_map.pt", out / "start_states.npz")
    assert env.context_length == 3 and env.world_model.context_length == 2
    env.reset(seed=0)
    history = env._context.clone()
    expected = action_map.probabilities(history, torch.tensor([2]))[0]
    assert np.allclose(env.latent_probabilities(2), expected)
    obs, *_ = env.step(2)
    assert env._context.shape[1] == 3 and torch.equal(env._context[:, :2], history[:, 1:])
    with pytest.raises(NeuralBreakoutError, match="need 3"):  # a 2-frame bank is too short for this map
        NeuralBreakoutEnv(models["checkpoint"], out / "action_map.pt", models["start_states"])
    base = ("train", "action-map", "--data", str(models["data"]), "--world-model", str(models["checkpoint"]),
            "--out", str(out), "--quiet")
    _one_line_error(run(*base, "--context", "-1"), "--context", "-1")
    _one_line_error(run(*base, "--rare-share", "2"), "--rare-share", "2")


def test_action_map_checkpoint_errors(tmp_path, models):
    wrong = save_checkpoint(tmp_path / "wrong.pt", "world-model", ActionMapConfig(), dict(weights={}))
    with pytest.raises(CheckpointError, match="expected 'action-map'"):
        load_action_map(wrong)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_action_map(tmp_path / "missing.pt")
    other = save_checkpoint(tmp_path / "other.pt", ACTION_MAP_KIND, ActionMapConfig(codes=3, width=8),
                            dict(weights=ActionMap(ActionMapConfig(codes=3, width=8)).state_dict()))
    with pytest.raises(NeuralBreakoutError, match="another world model"):
        NeuralBreakoutEnv(models["checkpoint"], other, models["start_states"])



def test_env_refuses_an_action_map_of_another_encoder(tmp_path, models):
    """Same number of codes, other encoder weights: the map's codes mean other moves, so the env stops
    with an error naming both files instead of playing the wrong latents."""
    from worldmodel.checkpoint import load_checkpoint
    from worldmodel.world_model import load_world_model

    world_model = load_world_model(models["checkpoint"])
    assert load_action_map(models["action_map"]).summary["world_model_codes"] == world_model.codes_fingerprint()
    payload = load_checkpoint(models["checkpoint"], "world-model")
    weights = dict(payload["state"]["weights"])
    name = next(k for k in weights if k.startswith("encoder.") and weights[k].is_floating_point())
    weights[name] = weights[name] + 0.01
    other = save_checkpoint(tmp_path / "other.pt", "world-model", payload["config"],
                            dict(payload["state"], weights=weights), payload["summary"])
    assert load_world_model(other).codes_fingerprint() != world_model.codes_fingerprint()
    with pytest.raises(NeuralBreakoutError, match="codes of another world model.*train it again"):
        NeuralBreakoutEnv(other, models["action_map"], models["start_states"])
    NeuralBreakoutEnv(models["checkpoint"], models["action_map"], models["start_states"])  # its own: plays


def test_env_passes_check_env_and_is_deterministic(models):
    env = make(models)
    check_env(env, skip_render_check=True)
    runs = []
    for _ in range(2):
        obs, info = env.reset(seed=3)
        frames = [obs]
        for action in [1, 2, 2, 3, 0, 1, 3, 3]:
            obs, reward, terminated, truncated, info = env.step(action)
            frames.append(obs)
            assert obs.shape == (210, 160, 3) and obs.dtype == np.uint8 and isinstance(reward, float)
            assert set(info) >= {"lives", "score", "latent_action"}
            # the block counts the env keeps step by step are those of its context, counted afresh
            context = env.unwrapped._context[:, -env.unwrapped.action_map.config.context:]
            assert torch.equal(env.unwrapped._counts, class_counts(context, env.unwrapped.action_map.config.classes))
        runs.append(np.stack(frames))
    assert np.array_equal(runs[0], runs[1])
    sampled = make(models, sample=True)
    a = [sampled.reset(seed=5)[0]] + [sampled.step(2)[0] for _ in range(4)]
    b = [sampled.reset(seed=5)[0]] + [sampled.step(2)[0] for _ in range(4)]
    assert np.array_equal(np.stack(a), np.stack(b))


def test_env_reset_from_frames_and_errors(models):
    env = make(models, render_mode="rgb_array")
    bank = load_start_states(models["start_states"])
    frames = bank["frames"][1]
    obs, info = env.reset(options={"frames": frames})
    assert np.array_equal(obs, frames[-1]) and np.array_equal(env.render(), frames[-1])
    obs, _ = env.reset(options={"frames": frames[-1:]})  # one frame is repeated to fill the context
    assert np.array_equal(obs, frames[-1])
    with pytest.raises(NeuralBreakoutError, match="options\\['frames'\\]"):
        env.reset(options={"frames": frames.astype(np.float32)})
    with pytest.raises(NeuralBreakoutError, match="action must be one of"):
        env.step(7)
    with pytest.raises(NeuralBreakoutError, match="call reset"):
        make(models).step(0)
    with pytest.raises(NeuralBreakoutError, match="no start-state bank"):
        NeuralBreakoutEnv(models["checkpoint"], models["action_map"], models["data"] / "missing.npz")


def test_registered_with_gymnasium(models):
    assert worldmodel.ENV_ID in gymnasium.registry
    env = gymnasium.make("NeuralBreakout-v0", checkpoint=models["checkpoint"], action_map=models["action_map"],
                         start_states=models["start_states"])
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs) and env.action_space.n == 4
    assert env.unwrapped.get_action_meanings() == ["NOOP", "FIRE", "RIGHT", "LEFT"]


def test_shipped_checkpoints_make_a_game():
    env = NeuralBreakoutEnv()
    obs, info = env.reset(seed=0)
    assert env.world_model.summary.get("training_command") and env.action_map.summary.get("held_out_accuracy")
    for action in (1, 2, 3, 0):
        obs, *_ = env.step(action)
    assert obs.shape == (210, 160, 3) and info["lives"] > 0


def test_rollout_side_by_side_gif(models, tmp_path):
    out = tmp_path / "roll.gif"
    result = run("rollout", "--policy", "tracker", "--steps", "6", "--out", str(out), "--side-by-side",
                 "--scale", "1", *model_args(models), "--quiet")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["frames"] >= 7
    assert imageio.mimread(out)[0].shape[:2] == (210, 160 + 4 + 160)  # neural | separator | real
    result = run("rollout", "--steps", "3", "--out", str(tmp_path / "roll.avi"), *model_args(models))
    _one_line_error(result, "roll.avi", ".gif or .mp4")


def test_fire_check_counts_a_whole_ball_not_a_dot():
    from train.evaluate_play import whole_ball

    frame = np.zeros((210, 160, 3), dtype=np.uint8)
    frame[120:124, 80:82] = (200, 72, 72)  # a 2x4 ball in mid-field
    assert whole_ball(frame)
    frame[121:124] = 0  # the parser still reads a ball in the 2 pixels left, but it is not one
    assert parse_frame(frame).ball is not None and not whole_ball(frame)
    assert not whole_ball(np.zeros_like(frame))


def test_evaluate_play_cli(models, tmp_path):
    out = tmp_path / "eval"
    result = run("evaluate", "play", "--data", str(models["data"]), *model_args(models), "--out", str(out),
                 "--segments", "2", "--horizon", "4", "--presses", "2", "--fires", "2", "--tracker-minutes", "0.02",
                 "--quiet")
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    roll = report["controlled_rollouts"]
    assert roll["segments"] >= 1 and report["game_logic"]["steps"] == 18
    low, high = roll["median_ball_tracking_horizon_95ci"]
    assert low <= roll["median_ball_tracking_horizon"] <= high <= 4
    assert 0 <= roll["inferred_latents"]["median_ball_tracking_horizon"] <= 4  # the same segments, without the env
    assert set(report["game_logic"]["violations"]) == {"brick_reappeared", "score_decreased", "lives_increased",
                                                        "ball_vanished_mid_field"}
    assert 0 <= report["paddle_direction"]["accuracy"] <= 1 and (out / "tracker.gif").exists()
    assert 0 <= report["game_logic"]["frozen_steps"] <= 18 and 0 <= report["game_logic"]["whole_ball_steps"] <= 18


def test_game_logic_counts_a_frozen_game():
    """A game whose frame never changes breaks no rule, and the report says it is frozen."""
    from train.evaluate_play import EvaluatePlayConfig, game_logic

    class Frozen:
        def __init__(self):
            self.frame = np.zeros((210, 160, 3), dtype=np.uint8)

        def reset(self, seed=None):
            return self.frame.copy(), {"lives": 5, "score": 0}

        def step(self, action):
            return self.frame.copy(), 0.0, False, False, {"lives": 5, "score": 0}

    report, gif = game_logic(Frozen(), EvaluatePlayConfig(data="unused"), steps=12)
    assert report["frozen_steps"] == 12 and report["whole_ball_steps"] == 0 and len(gif) == 12
    assert sum(report["violations"].values()) == 0 and report["points"] == 0


def test_game_logic_weighs_the_bricks_broken_against_the_points(recorded_episode):
    """A game that breaks a top-row brick (7 points) and a bottom-row one (1) while its score stays put
    scores 0 points for bricks worth 8, and breaks no rule."""
    from train.evaluate_play import EvaluatePlayConfig, game_logic
    from worldmodel.breakout import BRICK_H, BRICK_TOP, BRICK_W, PLAYFIELD_LEFT

    start = recorded_episode[3][0]
    assert parse_frame(start).bricks.all()
    frames = [start, start.copy(), start.copy()]
    frames[1][BRICK_TOP:BRICK_TOP + BRICK_H, PLAYFIELD_LEFT:PLAYFIELD_LEFT + BRICK_W] = 0
    frames[2] = frames[1].copy()
    frames[2][BRICK_TOP + 5 * BRICK_H:BRICK_TOP + 6 * BRICK_H, PLAYFIELD_LEFT:PLAYFIELD_LEFT + BRICK_W] = 0

    class Breaking:
        def __init__(self):
            self.t = 0

        def reset(self, seed=None):
            self.t = 0
            return frames[0].copy(), {"lives": 5, "score": 0}

        def step(self, action):
            self.t = min(self.t + 1, 2)
            return frames[self.t].copy(), 0.0, False, False, {"lives": 5, "score": 0}

    report, _ = game_logic(Breaking(), EvaluatePlayConfig(data="unused"), steps=4)
    assert report["bricks_broken"] == 2 and report["brick_points"] == 8 and report["points"] == 0
    assert sum(report["violations"].values()) == 0


def test_play_neural_game_in_dummy_window(models):
    result = run("play", "--max-steps", "10", "--seed", "1", *model_args(models),
                 env={"SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"})
    assert result.returncode == 0, result.stderr


def test_play_without_display_points_to_rollout(models):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER")}
    result = subprocess.run([sys.executable, "-m", "neural_breakout", "play", *model_args(models)],
                            capture_output=True, text=True, timeout=60, env=env)
    _one_line_error(result, "no display", "rollout")
