"""The world model's keep bonus: how the decision threshold of `predict` trades a sharp ball against
serves, on training episodes only (so choosing the shipped value never looks at held-out data).

    python benchmarks/keep_bonus.py --data data/breakout [--bonuses 0,1,1.5,2,3.04]

For each bonus it prints, with the same sampled training transitions and contexts:
- 1-step ball within 1 px and brick map exact (latents inferred from the video);
- the share of no-ball contexts in which a ball appears within 4 steps through the env after FIRE,
  and after NOOP from the same contexts.
Training weighs changed pixels 21x, so log 21 = 3.04 restores the true per-pixel odds; 0 is the raw
argmax of the trained logits.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

from train.evaluate_play import ball_appears
from train.world_model import WorldModelTrainConfig, load_split
from worldmodel.breakout import FIRE, NOOP, parse_frame
from worldmodel.env import NeuralBreakoutEnv


def no_ball_contexts(store, k: int, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    rgb, contexts = store.table.to_rgb, []
    for start in store.starts[rng.permutation(len(store))]:
        info = parse_frame(rgb(store.frames[start]))
        if info.ball is None and info.lives > 0:
            contexts.append(rgb(store.context(np.array([start]), k)[0]))
            if len(contexts) == count:
                break
    return contexts


def launch_rate(env, contexts: list[np.ndarray], first: int, window: int = 4) -> float:
    return float(np.mean([ball_appears(env, context, first, window) for context in contexts]))


def parse_bonuses(parser: argparse.ArgumentParser, text: str) -> list[float]:
    try:
        return [float(b) for b in text.split(",")]
    except ValueError:
        parser.error(f"--bonuses: expected comma-separated numbers, got {text!r}")


def infer_latents(model, context: torch.Tensor, target: torch.Tensor, chunk: int = 50) -> torch.Tensor:
    """The latent actions the encoder infers for a batch of transitions, `chunk` at a time."""
    return torch.cat([model.infer_latent_ids(context[i:i + chunk], target[i:i + chunk])
                      for i in range(0, len(target), chunk)])


def predict_all(model, context: torch.Tensor, latent: torch.Tensor, chunk: int = 50) -> np.ndarray:
    """The world model's next frames (class ids) for a batch, `chunk` at a time."""
    return torch.cat([model.predict_ids(context[i:i + chunk], latent[i:i + chunk])
                      for i in range(0, len(latent), chunk)]).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the world model's training data folder")
    parser.add_argument("--checkpoint", default=None, help="world model (default: the shipped one)")
    parser.add_argument("--bonuses", default="0,1,1.5,2,3.04", help="comma-separated bonuses to try")
    parser.add_argument("--episodes", type=int, default=30, help="first N episodes to read (default 30)")
    parser.add_argument("--transitions", type=int, default=400, help="1-step transitions (default 400)")
    parser.add_argument("--contexts", type=int, default=60, help="no-ball contexts for FIRE/NOOP (default 60)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    bonuses = parse_bonuses(parser, args.bonuses)
    torch.set_num_threads(args.threads)
    env = NeuralBreakoutEnv(checkpoint=args.checkpoint)
    model = env.world_model
    train, _ = load_split(WorldModelTrainConfig(data=args.data, max_episodes=args.episodes), model.table, False)
    rng = np.random.default_rng(args.seed)
    k = model.context_length
    contexts = no_ball_contexts(train, k, args.contexts, rng)
    context, target = train.batch(rng.choice(len(train), args.transitions, replace=False), k)
    context, target = torch.from_numpy(context), torch.from_numpy(target)
    latent = infer_latents(model, context, target)
    real = [parse_frame(model.table.to_rgb(t)) for t in target.numpy()]
    print(f"{len(train.names)} training episodes; {args.transitions} transitions, {len(contexts)} no-ball contexts")
    print("bonus | ball <=1px | bricks exact | FIRE launches | NOOP launches")
    for bonus in bonuses:
        model.config = dataclasses.replace(model.config, keep_bonus=bonus)
        predicted = predict_all(model, context, latent)
        generated = [parse_frame(model.table.to_rgb(p)) for p in predicted]
        with_ball = [(r, g) for r, g in zip(real, generated) if r.ball is not None]
        ball = np.mean([g.ball is not None and max(abs(g.ball[0] - r.ball[0]), abs(g.ball[1] - r.ball[1])) <= 1
                        for r, g in with_ball])
        bricks = np.mean([np.array_equal(r.bricks, g.bricks) for r, g in zip(real, generated)])
        print(f"{bonus:5.2f} | {100 * ball:9.1f}% | {100 * bricks:11.1f}% | {100 * launch_rate(env, contexts, FIRE):12.1f}% "
              f"| {100 * launch_rate(env, contexts, NOOP):12.1f}%", flush=True)


if __name__ == "__main__":
    main()
