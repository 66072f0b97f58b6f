"""``sleepy_env:SleepyCue-v0``: CueDelay whose every step sleeps (default 5 ms), for the env-runner scaling figures
(benchmarks/runner_scaling.py): a simulator slow enough that runners wait on the env, not on the CPUs. Importing
this module registers the id; Ray's workers import it through ``PYTHONPATH`` (the script sets it)."""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym

from tracerl.envs import CueDelay


class SleepyCue(gym.Wrapper):
    """``CueDelay(**kwargs)`` whose ``step`` sleeps ``sleep_s`` seconds first."""

    def __init__(self, sleep_s: float = 0.005, **kwargs: Any) -> None:
        super().__init__(CueDelay(**kwargs))
        self.sleep_s = sleep_s

    def step(self, action: Any) -> Any:
        time.sleep(self.sleep_s)
        return self.env.step(action)


if "SleepyCue-v0" not in gym.registry:
    gym.register(id="SleepyCue-v0", entry_point=SleepyCue)
