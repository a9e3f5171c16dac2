"""Train the collector agent: Double DQN with a dueling head, n-step returns and prioritized replay,
exploring either by Boltzmann sampling over Q-values with an annealed temperature or by Random
Network Distillation (an intrinsic reward from a predictor chasing a fixed random network).

    neural-breakout train agent --exploration temperature --steps 3000000 --out runs/agent

Resumes from `OUT/checkpoint.pt` after a kill (networks, optimizers, schedules, counters, RNG,
normalizers, learning curve). The replay memory is not saved (it is gigabytes): on resume it is
refilled for `learning_starts` steps with the current policy before updates continue.
"""

from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from collect.agent_env import make_agent_env, newest_frame
from collect.dqn import AGENT_KIND, QNetwork, QNetworkConfig, RNDNetwork, load_agent  # noqa: F401 (re-exported)
from collect.replay import PrioritizedReplay
from train.logger import RunLogger
from worldmodel.checkpoint import load_checkpoint, load_weights, save_checkpoint
from worldmodel.video import write_video

TRAIN_STATE_KIND = "dqn-agent-training-state"


@dataclass(frozen=True)
class AgentConfig:
    exploration: str = field(default="temperature", metadata={
        "help": "temperature: Boltzmann over Q with annealed temperature; rnd: RND intrinsic reward",
        "choices": ("temperature", "rnd")})
    steps: int = field(default=3_000_000, metadata={"help": "environment steps (agent steps, 4 frames each)"})
    out: str = field(default="runs/agent", metadata={"help": "folder for checkpoints, logs and the learning curve"})
    seed: int = field(default=0, metadata={"help": "seed of envs, networks and sampling"})
    n_envs: int = field(default=4, metadata={"help": "parallel envs (subprocesses)"})
    threads: int = field(default=2, metadata={"help": "torch threads for the learner"})
    buffer_size: int = field(default=1_000_000, metadata={"help": "replay capacity in transitions (7 KB each)"})
    batch_size: int = field(default=32, metadata={"help": "transitions per gradient update"})
    lr: float = field(default=1e-4, metadata={"help": "Adam learning rate"})
    gamma: float = field(default=0.99, metadata={"help": "discount"})
    n_step: int = field(default=3, metadata={"help": "n of the n-step return"})
    learning_starts: int = field(default=20_000, metadata={"help": "steps collected before updates (and on resume)"})
    train_every: int = field(default=4, metadata={"help": "environment steps per gradient update"})
    target_update: int = field(default=8_000, metadata={"help": "environment steps between target-network syncs"})
    alpha: float = field(default=0.5, metadata={"help": "priority exponent of prioritized replay"})
    beta_start: float = field(default=0.4, metadata={"help": "importance-sampling exponent, annealed to 1"})
    temperature_start: float = field(default=1.0, metadata={"help": "Boltzmann temperature at the start"})
    temperature_end: float = field(default=0.01, metadata={"help": "Boltzmann temperature after annealing"})
    epsilon_end: float = field(default=0.01, metadata={"help": "final epsilon of epsilon-greedy (rnd mode)"})
    anneal_fraction: float = field(default=0.15, metadata={"help": "share of steps over which exploration anneals"})
    rnd_coef: float = field(default=0.5, metadata={"help": "weight of the normalized intrinsic reward (rnd mode)"})
    width: int = field(default=16, metadata={"help": "Q-network width (first conv channels)"})
    hidden: int = field(default=256, metadata={"help": "Q-network dueling stream width"})
    checkpoint_minutes: float = field(default=10.0, metadata={"help": "minutes between training checkpoints"})
    eval_every: int = field(default=250_000, metadata={"help": "environment steps between evaluations"})
    eval_episodes: int = field(default=3, metadata={"help": "full games per evaluation during training"})
    eval_max_steps: int = field(default=10_000, metadata={"help": "step cap of an evaluation game"})
    max_minutes: float | None = field(default=None, metadata={"help": "stop (with a checkpoint) after this wall time"})
    wandb: bool = field(default=True, metadata={"help": "log to wandb (offline unless WANDB_MODE says otherwise)"})

    @property
    def q_config(self) -> QNetworkConfig:
        return QNetworkConfig(width=self.width, hidden=self.hidden)

    @classmethod
    def tiny(cls, out: str, **overrides) -> "AgentConfig":
        """A few hundred steps with a small replay: for tests and smoke runs."""
        base = dict(out=out, steps=600, n_envs=2, buffer_size=4000, learning_starts=200, batch_size=8,
                    target_update=200, eval_every=400, eval_episodes=1, eval_max_steps=100, width=4,
                    hidden=16, wandb=False, checkpoint_minutes=0.0)
        return cls(**{**base, **overrides})


class RunningMeanStd:
    """Running mean and variance (parallel-update formula) of arrays of a fixed shape. With `window`,
    the count stops growing there, so the estimate follows the last ~window samples instead of all."""

    def __init__(self, shape=(), window: float = float("inf")):
        self.mean, self.var, self.count = np.zeros(shape), np.ones(shape), 1e-4
        self.window = window

    def update(self, x: np.ndarray) -> None:
        batch_mean, batch_var, n = x.mean(axis=0), x.var(axis=0), x.shape[0]
        delta, total = batch_mean - self.mean, self.count + n
        self.mean = self.mean + delta * n / total
        self.var = (self.var * self.count + batch_var * n + delta**2 * self.count * n / total) / total
        self.count = min(total, self.window)

    def state_dict(self) -> dict:
        return dict(mean=self.mean, var=self.var, count=self.count)

    def load_state_dict(self, state: dict) -> None:
        self.mean, self.var, self.count = state["mean"], state["var"], state["count"]


class RND:
    """Intrinsic reward = error of a trained predictor against a fixed random network, on normalized
    frames; rewards are divided by a running std of the (non-episodic) intrinsic returns.

    The return statistics cover the last `return_window` vector steps only: the predictor's error
    falls about a hundredfold in its first thousand updates, and an all-time std stays at the early
    scale, which shrank the bonus to ~1e-4 (a 109k-step run saw no effect from it)."""

    def __init__(self, lr: float, gamma: float, n_envs: int, seed: int, return_window: int = 1000):
        torch.manual_seed(seed + 1)
        self.target = RNDNetwork().requires_grad_(False)
        self.predictor = RNDNetwork(predictor=True)
        self.optimizer = torch.optim.Adam(self.predictor.parameters(), lr=lr)
        self.obs_rms = RunningMeanStd((1, 84, 84))
        self.return_rms = RunningMeanStd(window=return_window * n_envs)
        self.returns = np.zeros(n_envs)
        self.gamma = gamma

    def _normalize(self, frames: np.ndarray) -> torch.Tensor:
        x = (frames[:, None].astype(np.float32) - self.obs_rms.mean) / np.sqrt(self.obs_rms.var + 1e-8)
        return torch.from_numpy(np.clip(x, -5, 5).astype(np.float32))

    def reward(self, frames: np.ndarray) -> np.ndarray:
        """(E, 84, 84) newest frames -> (E,) normalized intrinsic rewards."""
        self.obs_rms.update(frames[:, None].astype(np.float64))
        with torch.no_grad():
            x = self._normalize(frames)
            error = (self.predictor(x) - self.target(x)).pow(2).mean(dim=1).numpy()
        self.returns = self.returns * self.gamma + error
        self.return_rms.update(self.returns)
        return error / np.sqrt(self.return_rms.var + 1e-8)

    def train(self, frames: np.ndarray) -> float:
        x = self._normalize(frames)
        loss = (self.predictor(x) - self.target(x)).pow(2).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def state_dict(self) -> dict:
        return dict(target=self.target.state_dict(), predictor=self.predictor.state_dict(),
                    optimizer=self.optimizer.state_dict(), obs_rms=self.obs_rms.state_dict(),
                    return_rms=self.return_rms.state_dict(), returns=self.returns)

    def load_state_dict(self, state: dict) -> None:
        self.target.load_state_dict(state["target"])
        self.predictor.load_state_dict(state["predictor"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.obs_rms.load_state_dict(state["obs_rms"])
        self.return_rms.load_state_dict(state["return_rms"])
        self.returns = state["returns"]


def linear(start: float, end: float, fraction: float) -> float:
    return start + (end - start) * min(1.0, max(0.0, fraction))


def select_actions(q: torch.Tensor, config: AgentConfig, progress: float, rng: np.random.Generator) -> np.ndarray:
    """Boltzmann sampling over Q (temperature mode) or epsilon-greedy (rnd mode)."""
    if config.exploration == "temperature":
        temperature = linear(config.temperature_start, config.temperature_end, progress / config.anneal_fraction)
        probs = torch.softmax((q - q.max(dim=1, keepdim=True).values) / temperature, dim=1).numpy()
        cumulative = probs.cumsum(axis=1)
        draws = rng.random((len(q), 1))
        return np.minimum((draws > cumulative).sum(axis=1), q.shape[1] - 1)
    epsilon = linear(1.0, config.epsilon_end, progress / config.anneal_fraction)
    greedy = q.argmax(dim=1).numpy()
    explore = rng.random(len(q)) < epsilon
    return np.where(explore, rng.integers(q.shape[1], size=len(q)), greedy)


def make_vector_env(config: AgentConfig, seed_offset: int = 0) -> gym.vector.VectorEnv:
    fns = [lambda i=i: make_agent_env(seed=config.seed + seed_offset + i) for i in range(config.n_envs)]
    return gym.vector.AsyncVectorEnv(fns, context="spawn", autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


def evaluate(q_net: QNetwork, episodes: int, seed: int, epsilon: float = 0.01, max_steps: int = 27_000,
             record_first: bool = False) -> tuple[list[float], np.ndarray | None]:
    """Full games (5 lives) with epsilon-greedy; returns scores and optionally RGB frames of game 1."""
    env = make_agent_env(seed=seed, noop_max=30, max_episode_steps=max_steps)
    rng = np.random.default_rng(seed)
    scores, frames = [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        done, score = False, 0.0
        while not done:
            if record_first and episode == 0 and len(frames) < 2000:
                frames.append(env.unwrapped.ale.getScreenRGB())
            if rng.random() < epsilon:
                action = int(rng.integers(4))
            else:
                with torch.no_grad():
                    action = int(q_net(torch.from_numpy(obs[None])).argmax())
            obs, reward, terminated, truncated, _ = env.step(action)
            score += reward
            done = terminated or truncated
        scores.append(score)
    env.close()
    return scores, (np.stack(frames) if frames else None)


def export_agent(q_net: QNetwork, config: AgentConfig, summary: dict, path: str | Path) -> Path:
    """The small inference checkpoint (Q-network only, fp16 weights) that `record --policy agent` loads."""
    weights = {k: v.half() if v.is_floating_point() else v for k, v in q_net.state_dict().items()}
    return save_checkpoint(path, AGENT_KIND, config.q_config, dict(weights=weights), summary)


def export_from_run(run: str | Path, path: str | Path, episodes: int = 30, seed: int = 0,
                    epsilon: float = 0.01, max_steps: int = 27_000) -> tuple[Path, dict]:
    """Export the Q-network of a training run's latest checkpoint, with an evaluation over `episodes`
    full games stored in its summary (steps, wall and CPU time, learning curve, evaluation)."""
    state_path = Path(run) / "checkpoint.pt"
    payload = load_checkpoint(state_path, TRAIN_STATE_KIND)
    config = AgentConfig(**payload["config"])
    q_net = QNetwork(config.q_config)
    load_weights(q_net, payload["state"]["q"], state_path)
    q_net.eval()
    start = time.time()
    scores, _ = evaluate(q_net, episodes, seed=seed, epsilon=epsilon, max_steps=max_steps)
    evaluation = dict(mean_score=float(np.mean(scores)), std_score=float(np.std(scores)),
                      min_score=float(np.min(scores)), max_score=float(np.max(scores)), episodes=episodes,
                      seed=seed, epsilon=epsilon, scores=scores, wall_s=round(time.time() - start, 1),
                      policy=f"epsilon-greedy, epsilon {epsilon}, full games of 5 lives, FIRE at each life start")
    summary = dict(payload["summary"], evaluation=evaluation, curve=payload["state"]["curve"],
                   training_command=f"neural-breakout train agent --exploration {config.exploration} "
                                    f"--steps {config.steps} --out {config.out}", training_config=payload["config"])
    return export_agent(q_net, config, summary, path), evaluation


def train_agent(config: AgentConfig, progress: bool = True) -> dict:
    """Train until `config.steps` environment steps; returns the final summary."""
    from tqdm import tqdm

    torch.set_num_threads(config.threads)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "checkpoint.pt"
    torch.manual_seed(config.seed)
    q_net, target = QNetwork(config.q_config), QNetwork(config.q_config)
    optimizer = torch.optim.Adam(q_net.parameters(), lr=config.lr, eps=1.5e-4, fused=True)
    rnd = RND(config.lr, 0.99, config.n_envs, config.seed) if config.exploration == "rnd" else None
    rng = np.random.default_rng(config.seed)
    counters = dict(step=0, updates=0, episodes=0, wall_s=0.0, cpu_s=0.0, next_eval=config.eval_every,
                    last_target_sync=0)
    curve: list[dict] = []
    recent_scores: list[float] = []
    wandb_id = None
    if state_path.exists():
        payload = load_checkpoint(state_path, TRAIN_STATE_KIND)
        saved = payload["config"]
        for key in ("exploration", "width", "hidden", "n_envs"):
            if saved[key] != getattr(config, key):
                raise ValueError(f"{state_path}: was trained with {key}={saved[key]!r}, not {getattr(config, key)!r}; "
                                 f"use another --out or the same setting")
        state = payload["state"]
        load_weights(q_net, state["q"], state_path)
        target.load_state_dict(state["target"])
        optimizer.load_state_dict(state["optimizer"])
        if rnd is not None:
            rnd.load_state_dict(state["rnd"])
        rng.bit_generator.state = state["rng"]
        counters.update(state["counters"])
        curve, recent_scores, wandb_id = state["curve"], state["recent_scores"], state.get("wandb_id")
        print(f"resuming from {state_path} at step {counters['step']}")
    else:
        target.load_state_dict(q_net.state_dict())
    if counters["step"] >= config.steps:
        print(f"{state_path}: already trained for {counters['step']} steps (--steps {config.steps})")
    replay = PrioritizedReplay(config.buffer_size, config.n_envs, n_step=config.n_step, gamma=config.gamma,
                               alpha=config.alpha, seed=config.seed + counters["step"])
    logger = RunLogger(config, out, wandb_id, job_type="agent")

    def checkpoint() -> None:
        state = dict(q=q_net.state_dict(), target=target.state_dict(), optimizer=optimizer.state_dict(),
                     rnd=rnd.state_dict() if rnd else None, rng=rng.bit_generator.state, counters=counters,
                     curve=curve, recent_scores=recent_scores, wandb_id=logger.id)
        save_checkpoint(state_path, TRAIN_STATE_KIND, config, state, summary=summary())

    def summary() -> dict:
        last = curve[-1] if curve else {}
        return dict(steps=counters["step"], updates=counters["updates"], episodes=counters["episodes"],
                    wall_hours=counters["wall_s"] / 3600, cpu_hours=counters["cpu_s"] / 3600,
                    exploration=config.exploration, last_eval=last)

    def learn(progress_fraction: float) -> tuple[float, float]:
        """One Double-DQN update on a prioritized n-step batch; returns (loss, mean Q)."""
        batch = replay.sample(config.batch_size, linear(config.beta_start, 1.0, progress_fraction))
        obs_t, next_t = torch.from_numpy(batch["obs"]), torch.from_numpy(batch["next_obs"])
        with torch.no_grad():
            best = q_net(next_t).argmax(dim=1, keepdim=True)  # the online network picks,
            next_q = target(next_t).gather(1, best).squeeze(1)  # the target network evaluates
            td_target = torch.from_numpy(batch["returns"]) + torch.from_numpy(batch["bootstrap"]) * next_q
        q_taken = q_net(obs_t).gather(1, torch.from_numpy(batch["actions"])[:, None]).squeeze(1)
        elementwise = F.smooth_l1_loss(q_taken, td_target, reduction="none")
        loss = (torch.from_numpy(batch["weights"]) * elementwise).mean()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(q_net.parameters(), 10.0)
        optimizer.step()
        replay.update_priorities(batch["index"], (td_target - q_taken).detach().numpy())
        if rnd is not None:
            rnd.train(batch["next_obs"][:, -1])
        counters["updates"] += 1
        return loss.item(), q_taken.mean().item()

    envs = make_vector_env(config, seed_offset=counters["step"])
    obs, _ = envs.reset(seed=config.seed + counters["step"])
    firsts = np.ones(config.n_envs, dtype=bool)
    returns = np.zeros(config.n_envs)
    collected = 0  # steps collected in this process (the replay starts empty on resume)
    start_wall, start_cpu = time.time(), time.process_time()
    base_wall, base_cpu = counters["wall_s"], counters["cpu_s"]
    last_checkpoint = time.time()
    bar = tqdm(total=config.steps, initial=counters["step"], unit="step", disable=not progress, smoothing=0.05,
               desc=f"agent ({config.exploration})")
    update_debt = 0.0
    losses, q_means, intrinsic = [], [], []

    def on_sigterm(signum, frame):  # `kill` saves a checkpoint like Ctrl-C does
        raise KeyboardInterrupt

    previous_sigterm = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        while counters["step"] < config.steps:
            progress_fraction = counters["step"] / config.steps
            with torch.no_grad():
                q = q_net(torch.from_numpy(obs))
            actions = select_actions(q, config, progress_fraction, rng)
            envs.step_async(actions)  # the envs step while the learner updates

            if collected >= config.learning_starts and len(replay) >= config.batch_size:
                update_debt += config.n_envs / config.train_every
                while update_debt >= 1:
                    update_debt -= 1
                    loss, q_mean = learn(progress_fraction)
                    losses.append(loss)
                    q_means.append(q_mean)
                if counters["step"] - counters["last_target_sync"] >= config.target_update:
                    target.load_state_dict(q_net.state_dict())
                    counters["last_target_sync"] = counters["step"]

            next_obs, rewards, terminated, truncated, infos = envs.step_wait()
            ended = terminated | truncated
            done_for_learning = ended | infos["life_lost"]
            learn_rewards = np.sign(rewards).astype(np.float32)
            if rnd is not None:
                bonus = rnd.reward(newest_frame(next_obs))
                intrinsic.append(float(bonus.mean()))
                learn_rewards = learn_rewards + config.rnd_coef * bonus.astype(np.float32)
            replay.add(newest_frame(obs), actions, learn_rewards, done_for_learning, firsts)
            returns += rewards
            for i in np.flatnonzero(ended):
                recent_scores = (recent_scores + [float(returns[i])])[-100:]
                counters["episodes"] += 1
                returns[i] = 0.0
            firsts, obs = ended, next_obs
            counters["step"] += config.n_envs
            collected += config.n_envs
            bar.update(config.n_envs)

            counters["wall_s"] = base_wall + time.time() - start_wall
            counters["cpu_s"] = base_cpu + time.process_time() - start_cpu
            if counters["step"] % 10_000 < config.n_envs and losses:
                metrics = {"train/loss": float(np.mean(losses)), "train/q_mean": float(np.mean(q_means)),
                           "train/mean_score_100": float(np.mean(recent_scores)) if recent_scores else 0.0,
                           "train/episodes": counters["episodes"], "train/updates": counters["updates"],
                           "time/wall_h": counters["wall_s"] / 3600, "time/cpu_h": counters["cpu_s"] / 3600,
                           "time/steps_per_s": counters["step"] / max(1e-9, counters["wall_s"])}
                if intrinsic:
                    metrics["rnd/intrinsic_reward"] = float(np.mean(intrinsic))
                logger.log(metrics, counters["step"])
                bar.set_postfix(score=f"{metrics['train/mean_score_100']:.1f}", loss=f"{metrics['train/loss']:.3f}")
                losses, q_means, intrinsic = [], [], []
            if counters["step"] >= counters["next_eval"]:
                counters["next_eval"] += config.eval_every
                scores, video = evaluate(q_net, config.eval_episodes, seed=10_000 + counters["step"],
                                         max_steps=config.eval_max_steps, record_first=config.wandb)
                point = dict(step=counters["step"], wall_h=counters["wall_s"] / 3600,
                             cpu_h=counters["cpu_s"] / 3600, eval_mean=float(np.mean(scores)),
                             eval_std=float(np.std(scores)),
                             train_mean_100=float(np.mean(recent_scores)) if recent_scores else 0.0)
                curve.append(point)
                media = {}
                if video is not None and logger.run:
                    try:
                        media["eval/game"] = write_video(out / "media" / f"eval-{counters['step']:09d}.gif",
                                                         video[::2], fps=7.5)
                    except Exception as exc:  # media must never stop a training run
                        print(f"warning: evaluation GIF not written ({type(exc).__name__}: {exc})")
                logger.log({f"eval/{k}": v for k, v in point.items() if k != "step"}, counters["step"], media)
                bar.write(json.dumps(point))
            stop_for_time = config.max_minutes is not None and time.time() - start_wall > 60 * config.max_minutes
            if time.time() - last_checkpoint > 60 * config.checkpoint_minutes or stop_for_time:
                checkpoint()
                last_checkpoint = time.time()
            if stop_for_time:
                bar.write(f"stopping after {config.max_minutes} minutes; resume with the same command")
                break
        checkpoint()
        export_agent(q_net, config, summary(), out / "agent.pt")
    except BaseException as exc:  # Ctrl-C, kill, or a bug: keep the progress made so far
        checkpoint()
        bar.write(f"stopped by {type(exc).__name__}: checkpoint saved at step {counters['step']}; "
                  f"resume with the same command")
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
        bar.close()
        envs.close()
        logger.close()
    (out / "curve.json").write_text(json.dumps(curve, indent=1))
    return summary()
