"""Prioritized experience replay for the DQN agent: a sum tree over transitions whose frames are
stored once.

Each of the E parallel envs writes its own ring of slots. Slot k holds frame f_k (84x84 uint8, the
newest frame of the observation stack), the action taken there, its reward, `done` (the next state
is terminal for learning: a life lost or the game over) and `first` (f_k starts an episode). An
observation is the stack of frames k-3..k, padded with the episode's first frame; the n-step
target of slot k reads rewards k..k+n-1 and the stack at k+n, cut at the first `done`. One million
transitions take 84*84 bytes each, about 7 GB.
"""

from __future__ import annotations

import numpy as np


class SumTree:
    """Binary tree whose leaves hold priorities; sampling proportional to priority in O(log N)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.size = 1 << max(1, int(np.ceil(np.log2(capacity))))
        self.tree = np.zeros(2 * self.size, dtype=np.float64)  # tree[1] is the root, leaves at size..

    @property
    def total(self) -> float:
        return float(self.tree[1])

    def max_leaf(self) -> float:
        return float(self.tree[self.size : self.size + self.capacity].max())

    def set(self, indices: np.ndarray, priorities: np.ndarray) -> None:
        indices = np.asarray(indices, dtype=np.int64)
        priorities = np.asarray(priorities, dtype=np.float64)
        if np.any(priorities < 0) or not np.all(np.isfinite(priorities)):
            raise ValueError("priorities must be finite and non-negative")
        nodes = indices + self.size
        self.tree[nodes] = priorities
        nodes = np.unique(nodes // 2)
        while nodes[0] >= 1:
            self.tree[nodes] = self.tree[2 * nodes] + self.tree[2 * nodes + 1]
            if nodes[0] == 1:
                break
            nodes = np.unique(nodes // 2)

    def get(self, indices: np.ndarray) -> np.ndarray:
        return self.tree[np.asarray(indices, dtype=np.int64) + self.size]

    def find(self, values: np.ndarray) -> np.ndarray:
        """Leaf index for each value in [0, total): the leaf whose cumulative range contains it."""
        values = np.array(values, dtype=np.float64)
        nodes = np.ones(len(values), dtype=np.int64)
        while nodes[0] < self.size:
            left = self.tree[2 * nodes]
            go_right = values >= left
            values = np.where(go_right, values - left, values)
            nodes = 2 * nodes + go_right
        return np.minimum(nodes - self.size, self.capacity - 1)


class PrioritizedReplay:
    """Frame-deduplicated n-step replay for E parallel envs with proportional prioritization."""

    def __init__(self, capacity: int, n_envs: int, frame_shape=(84, 84), stack: int = 4, n_step: int = 3,
                 gamma: float = 0.99, alpha: float = 0.5, eps: float = 1e-6, seed: int = 0):
        if capacity < n_envs * (stack + n_step + 2):
            raise ValueError(f"replay capacity {capacity} is too small for {n_envs} envs")
        self.n_envs, self.per_env = n_envs, capacity // n_envs
        self.capacity = self.n_envs * self.per_env
        self.stack, self.n_step, self.gamma, self.alpha, self.eps = stack, n_step, gamma, alpha, eps
        self.frames = np.zeros((n_envs, self.per_env, *frame_shape), dtype=np.uint8)
        self.actions = np.zeros((n_envs, self.per_env), dtype=np.int64)
        self.rewards = np.zeros((n_envs, self.per_env), dtype=np.float32)
        self.dones = np.zeros((n_envs, self.per_env), dtype=bool)
        self.firsts = np.zeros((n_envs, self.per_env), dtype=bool)
        self.pos = 0  # next slot to write, the same for every env
        self.written = 0  # slots written per env so far
        self.tree = SumTree(self.capacity)
        self.max_priority = 1.0
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        """Transitions that can be sampled (their n-step target is stored)."""
        return int(np.count_nonzero(self.tree.tree[self.tree.size : self.tree.size + self.capacity]))

    def add(self, frames: np.ndarray, actions: np.ndarray, rewards: np.ndarray, dones: np.ndarray,
            firsts: np.ndarray) -> None:
        """Write one slot per env: frames (E, 84, 84) uint8 = newest frame of each env's observation."""
        p = self.pos
        self.frames[:, p] = frames
        self.actions[:, p] = actions
        self.rewards[:, p] = rewards
        self.dones[:, p] = dones
        self.firsts[:, p] = firsts
        self.pos = (p + 1) % self.per_env
        self.written += 1
        envs = np.arange(self.n_envs)
        # Slots about to be overwritten (and this one, whose target is not stored yet) leave the tree;
        # the slot n steps back now has its whole n-step target stored.
        stale = [(p + k) % self.per_env for k in range(0, self.stack)]
        self.tree.set((envs[:, None] * self.per_env + np.array(stale)[None, :]).ravel(),
                      np.zeros(self.n_envs * len(stale)))
        ready = p - self.n_step
        if self.written > self.n_step:
            ready %= self.per_env
            self.tree.set(envs * self.per_env + ready, np.full(self.n_envs, self.max_priority ** self.alpha))

    def _stack_at(self, env: np.ndarray, slot: np.ndarray) -> np.ndarray:
        """(B, stack, 84, 84) observation stacks ending at `slot`, padded with the episode's first frame."""
        offsets = np.arange(-(self.stack - 1), 1)  # (stack,)
        slots = (slot[:, None] + offsets[None, :]) % self.per_env  # (B, stack)
        # Walk back from the newest frame: once a slot marks an episode start, older ones repeat it.
        use = slots.copy()
        for j in range(self.stack - 2, -1, -1):
            started = self.firsts[env, use[:, j + 1]]
            use[:, j] = np.where(started, use[:, j + 1], slots[:, j])
        return self.frames[env[:, None], use]

    def sample(self, batch_size: int, beta: float) -> dict[str, np.ndarray]:
        """A prioritized batch with importance-sampling weights (normalized to max 1)."""
        total = self.tree.total
        if total <= 0:
            raise ValueError("replay is empty: add at least n_step + 1 slots before sampling")
        bounds = np.linspace(0, total, batch_size + 1)
        values = self.rng.uniform(bounds[:-1], bounds[1:])
        index = self.tree.find(values)
        priority = self.tree.get(index)
        bad = priority <= 0  # floating-point edge: resample those uniformly among valid leaves
        if bad.any():
            valid = np.flatnonzero(self.tree.get(np.arange(self.capacity)) > 0)
            index[bad] = self.rng.choice(valid, bad.sum())
            priority = self.tree.get(index)
        env, slot = index // self.per_env, index % self.per_env

        returns = np.zeros(batch_size, dtype=np.float32)
        alive = np.ones(batch_size, dtype=bool)
        for i in range(self.n_step):
            s = (slot + i) % self.per_env
            returns += alive * (self.gamma ** i) * self.rewards[env, s]
            alive &= ~self.dones[env, s]
        next_slot = (slot + self.n_step) % self.per_env

        probs = priority / total
        stored = min(self.written, self.per_env) * self.n_envs
        weights = (stored * probs) ** (-beta)
        return dict(
            index=index,
            obs=self._stack_at(env, slot),
            actions=self.actions[env, slot],
            returns=returns,
            next_obs=self._stack_at(env, next_slot),
            bootstrap=alive.astype(np.float32) * self.gamma ** self.n_step,
            weights=(weights / weights.max()).astype(np.float32),
        )

    def update_priorities(self, index: np.ndarray, td_errors: np.ndarray) -> None:
        priority = np.abs(np.asarray(td_errors, dtype=np.float64)) + self.eps
        self.max_priority = max(self.max_priority, float(priority.max()))
        live = self.tree.get(index) > 0  # a slot overwritten since it was sampled stays out
        self.tree.set(index[live], priority[live] ** self.alpha)

    def state_dict(self) -> dict:
        return dict(frames=self.frames, actions=self.actions, rewards=self.rewards, dones=self.dones,
                    firsts=self.firsts, pos=self.pos, written=self.written, tree=self.tree.tree,
                    max_priority=self.max_priority, rng=self.rng.bit_generator.state)

    def load_state_dict(self, state: dict) -> None:
        for name in ("frames", "actions", "rewards", "dones", "firsts"):
            if state[name].shape != getattr(self, name).shape:
                raise ValueError(f"replay {name} has shape {state[name].shape}, expected {getattr(self, name).shape}")
            getattr(self, name)[...] = state[name]
        self.pos, self.written = int(state["pos"]), int(state["written"])
        self.tree.tree[...] = state["tree"]
        self.max_priority = float(state["max_priority"])
        self.rng.bit_generator.state = state["rng"]
