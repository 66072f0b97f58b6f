"""``distributed.dying_env:DyingCue-v0``: CueDelay whose process kills itself (SIGKILL) at step ``die_at`` of the
first of its sub-envs to get there, once per ``marker`` file (never in process ``spare_pid``): a runner dying in the middle of a rollout."""

import os
import signal

import gymnasium as gym

from tracerl.envs import CueDelay


class DyingCue(gym.Wrapper):
    def __init__(self, marker: str, spare_pid: int, die_at: int = 20, **kwargs):
        super().__init__(CueDelay(**kwargs))
        self.marker, self.spare_pid, self.die_at, self.steps = marker, spare_pid, die_at, 0

    def step(self, action):
        self.steps += 1
        if self.steps == self.die_at and os.getpid() != self.spare_pid:  # never the test's own process
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        return self.env.step(action)


if "DyingCue-v0" not in gym.registry:
    gym.register(id="DyingCue-v0", entry_point=DyingCue)
