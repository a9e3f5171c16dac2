"""One run per CLI command, plus its error cases and interruption.

`run` calls the CLI's `main` inside the test process, so each command's test does not pay again for
importing torch and its optimizers (about 3.5 s a process on 2 cores). The tests that need a process of
their own (signals, the console script, its `--help`) start one with `run(..., process=True)`."""

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pytest

from collect.episodes import list_episodes, load_episode, process_stat


def run(*args, env=None, timeout=120, process=False):
    """`neural-breakout ARGS...` -> a CompletedProcess (returncode, stdout, stderr). In this process
    (`process` False): `env` is set around the call, the exit status is `main`'s return or SystemExit
    code (an uncaught exception gives 1 and its traceback on stderr, as `python -m` would), and the
    torch thread count is put back afterwards. `timeout` applies to a separate process only."""
    args = [str(a) for a in args]
    if process:
        return subprocess.run([sys.executable, "-m", "neural_breakout", *args], capture_output=True, text=True,
                              timeout=timeout, env=dict(os.environ, **(env or {})))
    import torch

    import neural_breakout

    saved_env, threads = dict(os.environ), torch.get_num_threads()
    stdout, stderr = io.StringIO(), io.StringIO()
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = neural_breakout.main(args)
            except SystemExit as exc:
                code = exc.code
                if code is not None and not isinstance(code, int):  # sys.exit("message"): printed, status 1
                    print(code, file=sys.stderr)
                    code = 1
            except Exception:  # noqa: BLE001 - what the interpreter would print before exiting with 1
                traceback.print_exc()
                code = 1
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        torch.set_num_threads(threads)
    return subprocess.CompletedProcess(["neural-breakout", *args], code or 0, stdout.getvalue(), stderr.getvalue())


@pytest.mark.parametrize("command", [[], ["record"], ["data"], ["data", "info"], ["play"], ["train", "world-model"],
                                     ["train", "action-map"], ["train", "ball-head"], ["train", "paddle-table"],
                                     ["train", "agent"], ["evaluate", "world-model"], ["evaluate", "play"],
                                     ["rollout"]])
def test_help(command):
    result = run(*command, "--help", process=not command)  # the top level in a process of its own
    assert result.returncode == 0
    assert "usage: neural-breakout" in result.stdout and len(result.stdout.splitlines()) > 3


def test_record_and_data_info(tmp_path):
    out = tmp_path / "eps"
    result = run("record", "--episodes", "3", "--workers", "2", "--max-steps", "60", "--out", str(out),
                 "--preview", "--preview-count", "1", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "wrote 3 episodes" in result.stdout
    paths = list_episodes(out)
    assert [p.name for p in paths] == ["episode-000000.npz", "episode-000001.npz", "episode-000002.npz"]
    assert (out / "previews" / "episode-000000.gif").stat().st_size > 1000
    episodes = [load_episode(p) for p in paths]
    assert all(len(e) <= 60 for e in episodes)
    assert len({e.meta["seed"] for e in episodes}) == 3

    again = run("record", "--episodes", "2", "--workers", "1", "--max-steps", "30", "--out", str(out), "--quiet")
    assert again.returncode == 0, again.stderr
    assert len(list_episodes(out)) == 5
    assert [load_episode(p).frames.tobytes() for p in paths] == [e.frames.tobytes() for e in episodes]

    info = run("data", "info", str(out))
    assert info.returncode == 0, info.stderr
    for word in ("episodes", "transitions", "bytes/frame", "NOOP", "FIRE", "RIGHT", "LEFT", "bricks remaining"):
        assert word in info.stdout
    summary = json.loads(run("data", "info", str(out), "--json").stdout)
    assert summary["episodes"] == 5
    assert summary["transitions"] == sum(len(load_episode(p)) for p in list_episodes(out))
    assert summary["bytes_per_frame"] < 2048
    assert abs(sum(summary["action_fraction"].values()) - 1) < 1e-6


def _one_line_error(result, *needles):
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_in_process_run_gives_what_a_process_gives(tmp_path):
    """`run` in this process stands for the command in a process of its own: the same exit status,
    output and error line, for a clean run, a bad argument (argparse's exit) and a bad folder."""
    (tmp_path / "empty").mkdir()
    for args in (("data", "info", "--help"), ("record", "--policy", "genius", "--out", str(tmp_path)),
                 ("data", "info", str(tmp_path / "empty"))):
        width = {"COLUMNS": "80"}  # argparse wraps help to the terminal's width, which `pytest -s` would show
        inside, alone = run(*args, env=width), run(*args, env=width, process=True)
        assert (inside.returncode, inside.stdout, inside.stderr) == (alone.returncode, alone.stdout, alone.stderr)


def test_in_process_run_puts_the_torch_threads_back(episodes_dir, tmp_path):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = run("train", "world-model", "--data", episodes_dir, "--out", tmp_path / "wm", "--tiny", "--quiet",
                     "--threads", "2", "--steps", "1")
        assert result.returncode == 0, result.stderr
        assert torch.get_num_threads() == 1  # the command ran with 2; the tests after it keep theirs
    finally:
        torch.set_num_threads(before)


def test_bad_input_errors(tmp_path):
    _one_line_error(run("data", "info", str(tmp_path / "missing")), "missing", "no such folder")
    _one_line_error(run("record", "--out", str(tmp_path), "--policy", "genius"), "--policy", "genius")
    _one_line_error(run("record", "--out", str(tmp_path), "--game", "pong"), "unknown game 'pong'")
    _one_line_error(run("record", "--out", str(tmp_path), "--episodes", "0"), "--episodes")
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_line_error(run("data", "info", str(empty)), "no episode files")

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "episode-000000.npz").write_bytes(b"PK\x03\x04 not really a zip")
    _one_line_error(run("data", "info", str(bad)), "episode-000000.npz", "corrupt")


def test_play_real_records_human_episode(tmp_path):
    result = run("play", "--real", "--max-steps", "40", "--record", str(tmp_path), "--seed", "5",
                 env={"SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"})
    assert result.returncode == 0, result.stderr
    (path,) = list_episodes(tmp_path)
    episode = load_episode(path)
    assert len(episode) == 40 and episode.meta["policy"] == "human" and episode.meta["seed"] == 5
    assert episode.truncated and not episode.terminated


def test_play_without_display_says_so():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER")}
    result = subprocess.run([sys.executable, "-m", "neural_breakout", "play", "--real"], capture_output=True,
                            text=True, timeout=60, env=env)
    _one_line_error(result, "no display")


def _wait_until_group_ended(pgid, timeout=30):
    """Wait until no process of group `pgid` runs any more (zombies, which nobody may reap, count as ended)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        running = []
        for folder in Path("/proc").glob("[0-9]*"):
            fields = process_stat(int(folder.name))
            if fields is not None and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                running.append(folder.name)
        if not running:
            return
        time.sleep(0.05)
    raise AssertionError(f"processes of group {pgid} still run after {timeout} s")


def _default_sigint():
    """Ctrl-C as in a terminal: a suite started in the background (`cmd &` in a shell without job
    control) ignores SIGINT, and a child inherits that, so the recorder would never see it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_interrupted_recording_leaves_only_complete_episodes(tmp_path, sig):
    out = tmp_path / "eps"
    proc = subprocess.Popen([sys.executable, "-m", "neural_breakout", "record", "--episodes", "500", "--out",
                             str(out), "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, preexec_fn=_default_sigint)
    deadline = time.time() + 60
    while time.time() < deadline and len(list(out.glob("episode-*.npz"))) < 3:
        time.sleep(0.05)
    os.killpg(proc.pid, sig)  # like Ctrl-C in a terminal: the whole process group gets the signal
    proc.wait(timeout=30)
    assert proc.returncode != 0
    if sig == signal.SIGKILL:  # nothing could clean up: the next recording removes the leftovers
        _wait_until_group_ended(proc.pid)  # the workers get SIGKILL too, but may take a moment to end
        run("record", "--episodes", "1", "--workers", "1", "--max-steps", "5", "--out", str(out), "--quiet")
    assert not list(out.glob(".*.tmp"))
    paths = list_episodes(out)
    assert len(paths) >= 3
    for path in paths:
        load_episode(path)  # every file that exists is complete
