"""Small envs and utilities shared by the tests."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class ConstantRewardEnv(gym.Env):
    """Never terminates; reward 1 every step; constant observation. Under TimeLimit it only truncates,
    so the true value is 1 / (1 - gamma)."""

    observation_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action):
        return np.zeros(2, dtype=np.float32), 1.0, False, False, {}


class ScriptedEnv(gym.Env):
    """Emits values from ``values`` as observation/reward; used to inject NaN at a known step."""

    observation_space = spaces.Box(-np.inf, np.inf, shape=(1,), dtype=np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self, obs_values=(), reward_values=(), length: int = 5) -> None:
        self.obs_values = list(obs_values)
        self.reward_values = list(reward_values)
        self.length = length
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, dtype=np.float32), {}

    def step(self, action):
        self.t += 1
        obs = self.obs_values[self.t] if self.t < len(self.obs_values) else 0.0
        rew = self.reward_values[self.t] if self.t < len(self.reward_values) else 0.0
        return np.array([obs], dtype=np.float32), float(rew), self.t >= self.length, False, {}


class DictObsEnv(gym.Env):
    """A Dict(Box, Discrete, MultiBinary) observation and a MultiDiscrete action; reward for matching."""

    observation_space = spaces.Dict(
        {"pos": spaces.Box(-1, 1, shape=(2,), dtype=np.float32), "mode": spaces.Discrete(3),
         "bits": spaces.MultiBinary(2)}
    )
    action_space = spaces.MultiDiscrete([3, 2])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        self.t += 1
        return self.observation_space.sample(), float(action[0] == 1), self.t >= 6, False, {}


def cue_delay_success(memory, steps: int, delay: int = 8, **hyperparams) -> float:
    """Train PPO with ``memory`` on CueDelay (difficulty 1) for ``steps`` env steps, seed 0; return the
    held-out success rate on 200 episodes. The shared learning smoke test of every memory core."""
    from tracerl import TraceRL
    from tracerl.evaluation import evaluate

    env_kwargs = {"delay": delay, "difficulty": 1}
    agent = TraceRL(env="tracerl/CueDelay-v0", env_kwargs=env_kwargs, memory=memory, seed=0, verbose=0,
                    **hyperparams)
    agent.learn(steps)
    return evaluate(agent, "tracerl/CueDelay-v0", 200, env_kwargs=env_kwargs).success_rate


def long_sequence(core: Any, input_dim: int, T: int = 4096, B: int = 2) -> tuple[Any, dict[str, Any], Any]:
    """Run a memory core on one episode of ``T`` steps of N(0, 9) inputs ``[T, B, input_dim]``; return its outputs,
    its final state and the gradient of ``outputs[-1].sum()`` with respect to the inputs ``[T, B, input_dim]``."""
    import torch

    x = (3.0 * torch.randn(T, B, input_dim)).requires_grad_()
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[0] = True
    y, state = core(x, core.initial_state(B), starts)
    y[-1].sum().backward()
    return y.detach(), state, x.grad


def input_gradient_of_last_output(core: Any, input_dim: int, T: int = 10) -> Any:
    """The gradient ``[T, 1, input_dim]`` of a random projection of a core's last output (one episode of ``T``
    steps, no start inside it) with respect to its inputs: nonzero at step t when step t reaches the last one."""
    import torch

    x = torch.randn(T, 1, input_dim, requires_grad=True)
    y, _ = core(x, core.initial_state(1), torch.zeros(T, 1, dtype=torch.bool))
    (y[-1] * torch.randn_like(y[-1])).sum().backward()
    return x.grad


def errors_without_blocking(load: Any, paths: list[Any], fifo: Any, what: str) -> list[BaseException | None]:
    """Call ``load(path)`` for each path in a worker thread; return what each raised (None: it returned).

    A load that blocks (on ``fifo``, a named pipe with no writer) fails the test: the FIFO is opened for writing
    once so the blocked reader can end, then ``pytest.fail`` names ``what``. This checks for a hang, not for speed.
    """
    import os
    import threading

    import pytest

    outcome: list[BaseException | None] = []

    def attempt() -> None:
        for path in paths:
            try:
                load(path)
                outcome.append(None)
            except BaseException as exc:  # noqa: BLE001 - the test inspects it
                outcome.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=10)
    if worker.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # let the blocked reader go
        worker.join(timeout=5)
        pytest.fail(f"{what} blocked on a FIFO")
    return outcome
