"""Play the real game (the emulator) with the keyboard, optionally recording human demonstrations."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from collect.atari import ale_of, env_id_for, make_env
from collect.episodes import EpisodeBuilder, recording_meta
from play.window import GameWindow


@dataclass(frozen=True)
class PlayConfig:
    real: bool = field(default=False, metadata={"help": "play the real game (the emulator)"})
    record: str | None = field(default=None, metadata={"help": "save each game as an episode in this folder"})
    scale: int = field(default=3, metadata={"help": "window scale factor over the native 160x210"})
    fps: float = field(default=15.0, metadata={"help": "game steps per second (15 is the Atari's own pace)"})
    seed: int | None = field(default=None, metadata={"help": "seed of the first game (random if not set)"})
    max_steps: int | None = field(default=None, metadata={"help": "quit after this many steps (for scripted runs)"})
    game: str = field(default="breakout", metadata={"help": "game to play"})


def play_real(config: PlayConfig) -> list[str]:
    """Run the window until the player quits; returns the paths of recorded episodes."""
    env = make_env(config.game)
    window = GameWindow(f"{env_id_for(config.game)} (real emulator)", scale=config.scale)
    ale = ale_of(env)
    rng = np.random.default_rng(config.seed)
    saved: list[str] = []
    steps = games = 0

    def new_game():
        nonlocal games
        seed = config.seed if games == 0 and config.seed is not None else int(rng.integers(2**31))
        games += 1
        obs, info = env.reset(seed=seed)
        builder = None
        if config.record:
            builder = EpisodeBuilder(recording_meta(config.game, env_id_for(config.game), seed, "human"))
            builder.reset(obs, lives=info["lives"], screen=ale.getScreen(), ram=ale.getRAM())
        return obs, info, builder

    def save(builder, terminated: bool) -> None:
        if builder is not None and len(builder) > 0:
            saved.append(str(builder.save(config.record, terminated=terminated, truncated=not terminated)))
            print(f"saved {saved[-1]} ({len(builder)} steps, score {sum(builder.rewards):g})")

    obs, info, builder = new_game()
    score, over = 0.0, False
    try:
        while config.max_steps is None or steps < config.max_steps:
            action, commands = window.poll()
            if "quit" in commands:
                break
            if "reset" in commands:
                save(builder, terminated=over)
                obs, info, builder = new_game()
                score, over = 0.0, False
            if not window.paused and not over:
                obs, reward, terminated, truncated, info = env.step(action)
                steps += 1
                score += reward
                if builder is not None:
                    builder.step(action, reward, obs, lives=info["lives"], screen=ale.getScreen(), ram=ale.getRAM())
                if terminated or truncated:
                    save(builder, terminated=terminated)
                    builder, over = None, True
            message = "GAME OVER - R to play again, Esc to quit" if over else None
            window.show(obs, f"score {score:g}   lives {info['lives']}   real", message)
            window.tick(config.fps)
    finally:
        save(builder, terminated=False)
        window.close()
        env.close()
    return saved
