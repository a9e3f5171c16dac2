"""Episodes on disk: lossless round trips, exact replay, atomic never-overwriting writes, validation."""

import json
import os
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from collect.atari import make_env
from collect.episodes import (
    EpisodeBuilder,
    list_episodes,
    load_episode,
    next_index,
    process_stat,
    remove_stale_temp_files,
    undo_delta,
    write_new_episode,
)
from worldmodel.errors import EpisodeFormatError


@pytest.fixture
def saved(tmp_path, recorded_episode):
    builder, *_ , terminated, truncated = recorded_episode
    return builder.save(tmp_path, terminated=terminated, truncated=truncated)


def test_round_trip_is_lossless(saved, recorded_episode):
    builder, seed, actions, frames, terminated, truncated = recorded_episode
    episode = load_episode(saved)
    assert episode.frames.dtype == np.uint8 and episode.frames.shape == frames.shape
    assert episode.frames.tobytes() == frames.tobytes()
    np.testing.assert_array_equal(episode.actions, actions)
    assert len(episode) == len(actions) and episode.ram.shape == (len(actions) + 1, 128)
    assert episode.lives[0] == 5 and episode.terminated == terminated and episode.truncated == truncated
    assert episode.meta["seed"] == seed and episode.meta["steps"] == len(actions)


@pytest.mark.parametrize("frames", [0, 1, 7])
def test_undo_delta_is_the_cumulative_xor(frames):
    deltas = np.random.default_rng(frames).integers(0, 256, (frames, 6, 5), dtype=np.uint8)
    assert np.array_equal(undo_delta(deltas), np.bitwise_xor.accumulate(deltas, axis=0))


def test_replay_from_seed_and_actions_gives_same_frames(saved):
    episode = load_episode(saved)
    env = make_env()
    obs, _ = env.reset(seed=episode.meta["seed"])
    replayed = [obs]
    for action in episode.actions:
        obs, *_ = env.step(int(action))
        replayed.append(obs)
    assert np.stack(replayed).tobytes() == episode.frames.tobytes()


def test_storage_is_small(saved):
    episode = load_episode(saved)
    assert os.path.getsize(saved) / (len(episode) + 1) < 2048


def test_rgb_frames_without_screen_indices_round_trip(tmp_path, recorded_episode):
    *_, frames, _, _ = recorded_episode
    builder = EpisodeBuilder({})
    builder.reset(frames[0], lives=5)
    for frame in frames[1:]:
        builder.step(0, 0.0, frame, lives=5)
    path = builder.save(tmp_path, terminated=False, truncated=True)
    assert load_episode(path).frames.tobytes() == frames.tobytes()


def test_new_episodes_never_overwrite(tmp_path, recorded_episode):
    builder, *_ = recorded_episode
    first = builder.save(tmp_path, terminated=True, truncated=False)
    before = first.read_bytes()
    second = builder.save(tmp_path, terminated=True, truncated=False, index=0)  # index taken: moves on
    assert first.name == "episode-000000.npz" and second.name == "episode-000001.npz"
    assert first.read_bytes() == before
    assert next_index(tmp_path) == 2 and len(list_episodes(tmp_path)) == 2
    assert not list(tmp_path.glob(".*.tmp"))


def test_truncated_file_is_rejected(saved):
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    with pytest.raises(EpisodeFormatError, match=f"{saved}.*truncated or corrupt"):
        load_episode(saved)


def test_corrupt_file_is_rejected(saved):
    data = bytearray(saved.read_bytes())
    for i in range(200, len(data) - 200, 97):  # flip bytes inside the compressed members
        data[i] ^= 0xFF
    saved.write_bytes(bytes(data))
    with pytest.raises(EpisodeFormatError, match=str(saved)):
        load_episode(saved)


def test_foreign_files_are_rejected(tmp_path):
    npz = tmp_path / "episode-000000.npz"
    np.savez(npz, x=np.zeros(3))
    with pytest.raises(EpisodeFormatError, match="not a neural-breakout episode"):
        load_episode(npz)
    text = tmp_path / "episode-000001.npz"
    text.write_text("hello")
    with pytest.raises(EpisodeFormatError, match=f"{text}.*truncated or corrupt"):
        load_episode(text)


def test_other_format_version_is_rejected(saved, tmp_path):
    with np.load(saved) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["format"] = np.frombuffer(b"neural-breakout-episode 99", dtype=np.uint8)
    path = write_new_episode(tmp_path / "v99", arrays)
    with pytest.raises(EpisodeFormatError, match="unsupported episode format version 99"):
        load_episode(path)


def test_inconsistent_arrays_are_rejected(saved, tmp_path):
    with np.load(saved) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["actions"] = arrays["actions"][:-1]
    path = write_new_episode(tmp_path / "short", arrays)
    with pytest.raises(EpisodeFormatError, match="actions has shape"):
        load_episode(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such episode file"):
        load_episode(tmp_path / "nope.npz")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        list_episodes(tmp_path / "nope")


def test_stale_temp_files_are_removed(tmp_path):
    dead_pid = 2**22 + 12345  # above the default pid_max, so no such process
    stale = tmp_path / f".episode-000000.npz.{dead_pid}.tmp"
    stale.write_bytes(b"half")
    live = tmp_path / f".episode-000001.npz.{os.getpid()}.tmp"
    live.write_bytes(b"in progress")
    assert remove_stale_temp_files(tmp_path) == 1
    assert not stale.exists() and live.exists()


def test_temp_file_of_a_killed_unreaped_writer_is_removed(tmp_path):
    # a writer killed with SIGKILL stays a zombie until reaped; its pid still answers kill(pid, 0)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        if process_stat(proc.pid) is None:
            pytest.skip("needs /proc")
        deadline = time.time() + 30
        while process_stat(proc.pid)[0] != "Z":
            assert time.time() < deadline, "the child did not exit"
            time.sleep(0.01)
        leftover = tmp_path / f".episode-000000.npz.{proc.pid}.tmp"
        leftover.write_bytes(b"half")
        assert remove_stale_temp_files(tmp_path) == 1
        assert not leftover.exists()
    finally:
        proc.wait()


def test_meta_is_json(saved):
    with zipfile.ZipFile(saved) as zf:
        assert "meta.npy" in zf.namelist()
    assert json.loads(json.dumps(load_episode(saved).meta))["policy"] == "random"
