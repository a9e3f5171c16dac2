"""The agent's training loop (tiny preset), resume, evaluation CLI, and checkpoint errors."""

import json

import numpy as np
import pytest
import torch

from collect.dqn import QNetwork, QNetworkConfig
from train.agent import AgentConfig, export_agent, load_agent, select_actions, train_agent
from test_cli import run as cli
from worldmodel.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


@pytest.mark.parametrize("exploration", ["temperature", "rnd"])
def test_tiny_training_and_eval_cli(tmp_path, exploration):
    out = tmp_path / "agent"
    result = cli("train", "agent", "--tiny", "--exploration", exploration, "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 600 and summary["updates"] > 0 and summary["exploration"] == exploration
    curve = json.loads((out / "curve.json").read_text())
    assert curve and {"step", "wall_h", "cpu_h", "eval_mean"} <= set(curve[0])
    assert (out / "log.jsonl").exists()

    evaluation = cli("agent", "eval", "--checkpoint", str(out / "agent.pt"), "--episodes", "2", "--max-steps", "60")
    assert evaluation.returncode == 0, evaluation.stderr
    report = json.loads(evaluation.stdout.strip().splitlines()[-1])
    assert report["episodes"] == 2 and {"mean_score", "std_score", "epsilon"} <= set(report)
    if exploration != "temperature":
        return
    # export the run's latest network with its evaluation as metadata, then record with it
    exported = tmp_path / "shipped.pt"
    result = cli("agent", "export", "--run", str(out), "--out", str(exported), "--episodes", "2", "--max-steps", "50")
    assert result.returncode == 0, result.stderr
    summary = load_checkpoint(exported, "dqn-agent")["summary"]
    assert summary["steps"] == 600 and summary["evaluation"]["episodes"] == 2 and len(summary["curve"]) >= 1
    assert "train agent --exploration temperature" in summary["training_command"]
    data = tmp_path / "data"
    result = cli("record", "--policy", "agent", "--checkpoint", str(exported), "--random-fraction", "0.3",
                 "--tracker-fraction", "0.3", "--epsilon", "0.1", "--episodes", "6", "--max-steps", "40",
                 "--out", str(data), "--quiet")
    assert result.returncode == 0, result.stderr
    info = json.loads(cli("data", "info", str(data), "--json").stdout)
    assert info["episodes"] == 6 and sum(info["policies"].values()) == 6
    assert set(info["policies"]) <= {"random", "agent (epsilon 0.1)", "tracker (epsilon 0.1)"}


def test_resume_continues_from_checkpoint(tmp_path):
    out = str(tmp_path / "agent")
    first = train_agent(AgentConfig.tiny(out, steps=300), progress=False)
    assert first["steps"] == 300
    state = load_checkpoint(tmp_path / "agent" / "checkpoint.pt", "dqn-agent-training-state")
    updates_before = state["state"]["counters"]["updates"]
    second = train_agent(AgentConfig.tiny(out, steps=600), progress=False)
    assert second["steps"] == 600
    assert second["updates"] > updates_before
    with pytest.raises(ValueError, match="was trained with width"):
        train_agent(AgentConfig.tiny(out, steps=900, width=8), progress=False)


def test_checkpoint_errors(tmp_path):
    net = QNetwork(QNetworkConfig(width=4, hidden=16))
    path = export_agent(net, AgentConfig.tiny(str(tmp_path), width=4, hidden=16), {"note": "test"}, tmp_path / "a.pt")
    loaded = load_agent(path)
    obs = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    torch.testing.assert_close(loaded(obs), net(obs), atol=1e-2, rtol=1e-2)  # fp16 weights

    other = save_checkpoint(tmp_path / "b.pt", "world-model", {"x": 1}, {})
    with pytest.raises(CheckpointError, match="is a 'world-model' checkpoint, expected 'dqn-agent'"):
        load_agent(other)
    payload = torch.load(path, weights_only=False)
    payload["format_version"] = 99
    torch.save(payload, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match="format version 99"):
        load_agent(tmp_path / "c.pt")
    payload["format_version"] = 1
    payload["config"]["hidden"] = 32
    torch.save(payload, tmp_path / "d.pt")
    with pytest.raises(CheckpointError, match="weights do not fit QNetwork"):
        load_agent(tmp_path / "d.pt")
    (tmp_path / "e.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="e.pt: not a readable checkpoint"):
        load_agent(tmp_path / "e.pt")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_agent(tmp_path / "missing.pt")


def test_exploration_schedules():
    rng = np.random.default_rng(0)
    q = torch.tensor([[0.0, 1.0, 0.0, 0.0]]).repeat(4000, 1)
    cold = select_actions(q, AgentConfig(), progress=1.0, rng=rng)  # temperature 0.01: greedy
    assert (cold == 1).mean() > 0.99
    hot = select_actions(q, AgentConfig(temperature_end=1.0), progress=0.0, rng=rng)  # temperature 1
    expected = np.exp([0, 1, 0, 0]) / np.exp([0, 1, 0, 0]).sum()
    np.testing.assert_allclose(np.bincount(hot, minlength=4) / len(hot), expected, atol=0.03)
    early = select_actions(q, AgentConfig(exploration="rnd"), progress=0.0, rng=rng)  # epsilon 1
    assert 0.2 < (early == 0).mean() < 0.3


def test_tiny_training_with_wandb_offline(tmp_path, monkeypatch):
    """The wandb path (offline), including the evaluation GIF, must not break a run."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "agent"
    summary = train_agent(AgentConfig.tiny(str(out), wandb=True), progress=False)
    assert summary["steps"] == 600
    assert list((out / "media").glob("eval-*.gif"))
    assert (out / "wandb").is_dir()


def test_compare_cli_reports_both_runs_at_a_common_budget(tmp_path):
    def fake_run(name, score_per_10k, cpu_h_per_10k, last_step, intrinsic=None):
        run = tmp_path / name
        run.mkdir()
        rows = []
        for step in range(10_000, last_step + 1, 10_000):
            row = {"step": step, "train/mean_score_100": score_per_10k * step / 10_000,
                   "time/cpu_h": cpu_h_per_10k * step / 10_000, "time/wall_h": 0.5 * cpu_h_per_10k * step / 10_000}
            if intrinsic is not None:
                row["rnd/intrinsic_reward"] = intrinsic
            rows.append(json.dumps(row))
        rows.insert(3, rows[2])  # a resumed run logs some steps twice
        (run / "log.jsonl").write_text("\n".join(rows) + "\n")
        return run

    slow = fake_run("temperature", score_per_10k=1.0, cpu_h_per_10k=0.01, last_step=200_000)
    fast = fake_run("rnd", score_per_10k=1.5, cpu_h_per_10k=0.02, last_step=100_000, intrinsic=0.03)
    out = tmp_path / "report.md"
    result = cli("agent", "compare", str(slow), str(fast), "--out", str(out), "--points", "4")
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert "100,000 environment steps" in text  # the budget both reached
    assert "| 100,000 | 10.0 | 15.0 |" in text  # same steps: the faster learner is ahead
    assert "| 0.20 | 20.0 | 15.0 |" in text and "0.25 |" not in text  # same CPU time: it is behind
    assert "| mean intrinsic reward per step | - | 0.03 |" in text

    assert cli("agent", "compare", str(slow), "--out", str(out)).returncode != 0
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "log.jsonl").write_text("{not json\n")
    result = cli("agent", "compare", str(slow), str(broken), "--out", str(out))
    assert result.returncode != 0 and "log.jsonl:1: not JSON" in result.stderr
