"""GoalLine: the goal env used to test HER (position visible only on the first step, sparse goal reward)."""

from __future__ import annotations

import numpy as np
import pytest

from tracerl.envs.goal_line import GoalLine
from tracerl.errors import ConfigError


def test_step_reward_equals_compute_reward_and_position_is_only_shown_first():
    env = GoalLine(size=5, horizon=6)
    obs, _ = env.reset(seed=3)
    assert obs["observation"][1] == 1.0 and obs["achieved_goal"][0] != obs["desired_goal"][0]
    for t in range(6):
        action = 2 if obs["desired_goal"][0] > obs["achieved_goal"][0] else 0
        obs, r, term, trunc, info = env.step(action)
        assert not term and np.all(obs["observation"] == 0)
        assert r == float(env.compute_reward(obs["achieved_goal"], obs["desired_goal"], {}))
        if obs["achieved_goal"][0] == obs["desired_goal"][0]:
            assert r == 0.0
    assert trunc and info["success"] is True


def test_compute_reward_is_vectorized_and_config_is_checked():
    env = GoalLine()
    r = env.compute_reward(np.array([[0.0], [2.0], [3.0]]), np.array([[0.0], [2.0], [4.0]]), [{}] * 3)
    assert r.tolist() == [0.0, 0.0, -1.0]
    with pytest.raises(ConfigError, match="size=1"):
        GoalLine(size=1)
    with pytest.raises(ConfigError, match="horizon=0"):
        GoalLine(horizon=0)
