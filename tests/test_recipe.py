"""train/recipe.sh: every stage parses as a CLI command, and each stage reads what an earlier one wrote."""
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from neural_breakout import build_parser

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "train" / "recipe.sh"


def recipe_commands(**env: str) -> list[list[str]]:
    out = subprocess.run(["bash", str(RECIPE), "print"], capture_output=True, text=True, check=True, cwd=ROOT,
                         env=dict(os.environ, **env))
    return [shlex.split(line) for line in out.stdout.splitlines() if line.strip()]


@pytest.mark.parametrize("recipe, stages", [("bf16", 17), ("shipped", 10)])
def test_recipe_stages_parse_and_chain(recipe, stages):
    commands = recipe_commands(RECIPE=recipe)
    assert len(commands) == stages
    parser = build_parser()
    written = {"checkpoints/agent.pt"}  # shipped with the repo
    folders = set()
    for argv in commands:
        assert argv[0] == "neural-breakout", argv
        args = parser.parse_args(argv[1:])  # an unknown or misspelt option exits here
        for option in ("init", "world_model", "action_map", "start_states", "checkpoint"):
            path = getattr(args, option, None)
            if path:
                assert path in written, f"{' '.join(argv)}: --{option} {path} is written by no earlier stage"
        for folder in [getattr(args, "data", None), *(getattr(args, "extra_data", None) or "").split(",")]:
            if folder and argv[1] != "record":
                assert folder in folders, f"{' '.join(argv)}: {folder} is recorded by no earlier stage"
        out = args.out
        if argv[1] == "record":
            folders.add(out)
        else:
            written.update({f"{out}/world_model.pt", f"{out}/action_map.pt", f"{out}/start_states.npz"})


def test_recipe_refuses_an_unknown_argument():
    result = subprocess.run(["bash", str(RECIPE), "everything"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2
    assert "unknown argument 'everything'" in result.stderr
    result = subprocess.run(["bash", str(RECIPE), "print"], capture_output=True, text=True, cwd=ROOT,
                            env=dict(os.environ, RECIPE="bf17"))
    assert result.returncode == 2
    assert "unknown RECIPE 'bf17'" in result.stderr


def test_shipped_recipe_is_the_shipped_files_float32_chain():
    """RECIPE=shipped: the runs that checkpoints/world_model.pt records, in float32."""
    import torch

    commands = recipe_commands(RECIPE="shipped")
    assert not any("--bf16" in argv for argv in commands)
    parser = build_parser()
    stages = [vars(parser.parse_args(argv[1:])) for argv in commands]
    summary = torch.load(ROOT / "checkpoints" / "world_model.pt", map_location="cpu", weights_only=False)["summary"]
    recorded = []
    while summary:  # the run, then the run its --init came from, and so on back to the first stage
        recorded.append(summary["training_command"])
        summary = summary.get("init")
    assert len(recorded) == 3  # the first stage, the second with the encoder frozen, the event input
    for command in recorded:
        assert vars(parser.parse_args(shlex.split(command)[1:])) in stages, command



def test_recipe_float32_drops_bf16_from_every_stage():
    """RECIPE_FLOAT32=1 (for a CPU without native bfloat16) runs the same stages with no `--bf16`."""
    bf16 = recipe_commands()
    env = dict(os.environ, RECIPE_FLOAT32="1")
    out = subprocess.run(["bash", str(RECIPE), "print"], capture_output=True, text=True, check=True, cwd=ROOT, env=env)
    float32 = [shlex.split(line) for line in out.stdout.splitlines() if line.strip()]
    assert sum("--bf16" in argv for argv in bf16) == 9
    assert float32 == [[a for a in argv if a != "--bf16"] for argv in bf16]
