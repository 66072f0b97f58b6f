"""ResilientVectorEnv: sub-envs that raise, die or hang are rebuilt and reported; EnvCrashError after max_restarts."""

from __future__ import annotations

import os
import time
from functools import partial

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from tracerl import TraceRL
from tracerl.envs import make_vec_env
from tracerl.envs.resilient import ResilientVectorEnv
from tracerl.errors import ConfigError, EnvCrashError


class Counter(gym.Env):
    """Deterministic: obs [t], reward t at step t, episodes of ``length`` steps."""

    observation_space = spaces.Box(-np.inf, np.inf, shape=(1,), dtype=np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self, length: int = 5) -> None:
        self.length = length
        self.t = 0
        self.life = 0  # steps over this instance's lifetime

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], dtype=np.float32), {}

    def step(self, action):
        self.t += 1
        self.life += 1
        self._fault()
        return np.array([float(self.t)], dtype=np.float32), float(self.t), self.t >= self.length, False, {}

    def _fault(self) -> None:
        pass


class Faulty(Counter):
    """Fails at lifetime step ``at``: raises, hangs (sleeps an hour) or dies (os._exit). With ``marker``, only the
    first instance to create that file fails (so the rebuilt env is healthy)."""

    def __init__(self, fault: str, at: int, marker: str | None = None, length: int = 5) -> None:
        super().__init__(length)
        self.fault, self.at, self.marker = fault, at, marker

    def _fires(self) -> bool:
        if self.marker is None:
            return True
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return True
        except FileExistsError:
            return False

    def _fault(self) -> None:
        if self.life == self.at and self._fires():
            self._explode()

    def _explode(self) -> None:
        if self.fault == "raise":
            raise RuntimeError(f"injected crash at lifetime step {self.at}")
        if self.fault == "hang":
            time.sleep(3600)
        if self.fault == "die":
            os._exit(3)


def _step(env, n: int = 1):
    out = None
    for _ in range(n):
        out = env.step(np.zeros(env.num_envs, dtype=np.int64))
    return out


@pytest.mark.faults("Sub-env raises inside step (in-process ResilientVectorEnv) | rebuilt from its factory and reset; "
                    "that index returns the reset obs, truncated=True, infos['env_restarted'] and the traceback; "
                    "the other sub-envs are untouched | the crashed episode (dropped from training)")
def test_an_env_that_raises_is_restarted_and_reported(tmp_path):
    env = ResilientVectorEnv([Counter, partial(Faulty, "raise", 3, str(tmp_path / "m"))], max_restarts=2)
    env.reset(seed=0)
    obs, reward, term, trunc, infos = _step(env, 2)
    assert "env_restarted" not in infos and env.restarts.tolist() == [0, 0]
    obs, reward, term, trunc, infos = _step(env)  # lifetime step 3 of sub-env 1 raises
    assert infos["env_restarted"].tolist() == [False, True]
    assert "RuntimeError: injected crash at lifetime step 3" in infos["env_error"][1]
    assert "Traceback (most recent call last)" in infos["env_error"][1] and "_explode" in infos["env_error"][1]
    assert obs[:, 0].tolist() == [3.0, 0.0]  # sub-env 1: the first obs of a fresh episode
    assert reward.tolist() == [3.0, 0.0] and term.tolist() == [False, False] and trunc.tolist() == [False, True]
    assert "final_obs" not in infos  # nothing to bootstrap from
    assert env.restarts.tolist() == [0, 1]
    obs, reward, term, trunc, infos = _step(env)  # the rebuilt sub-env runs normally
    assert obs[:, 0].tolist() == [4.0, 1.0] and "env_restarted" not in infos
    env.close()


@pytest.mark.faults("Sub-env raises on every episode, more than max_restarts times | EnvCrashError naming the env index "
                    "and carrying the sub-env's original traceback; training stops | none (nothing after the "
                    "last good rollout is trained on)")
def test_after_max_restarts_the_error_names_the_env_and_carries_the_traceback():
    env = ResilientVectorEnv([Counter, partial(Faulty, "raise", 2)], max_restarts=2)
    agent = TraceRL(env=env, memory="mlp", seed=0, verbose=0, n_steps=8, batch_size=-1, n_epochs=1, hidden_size=8)
    with pytest.raises(EnvCrashError) as err:
        agent.learn(10 * 16)
    e = err.value
    assert e.env_index == 1 and "sub-env 1" in str(e) and "max_restarts=2" in str(e)
    assert "RuntimeError: injected crash at lifetime step 2" in e.traceback_text
    assert "Traceback (most recent call last)" in e.traceback_text and "in _explode" in e.traceback_text
    assert e.traceback_text in str(e)
    assert env.restarts.tolist() == [0, 2] and len(env.errors[1]) == 3


@pytest.mark.faults("Subprocess sub-env hangs in step past step_timeout, another dies (os._exit) and raises | "
                    "the hung process is killed; each is rebuilt in a new process and reported like a crash | "
                    "the interrupted episodes (dropped from training)")
def test_hanging_and_dying_subprocess_envs_are_killed_and_restarted(tmp_path):
    fns = [partial(Faulty, "hang", 2, str(tmp_path / "hang")), partial(_Twice, str(tmp_path))]
    env = ResilientVectorEnv(fns, max_restarts=3, subprocess=True, step_timeout=1.0)
    try:
        env.reset(seed=0)
        first = env.envs[0].process
        _step(env)
        obs, reward, term, trunc, infos = _step(env)  # sub-env 0 sleeps: killed after the timeout
        assert infos["env_restarted"].tolist() == [True, False]
        assert "did not answer step within the timeout" in infos["env_error"][0]
        assert not first.is_alive() and first.exitcode is not None
        assert env.envs[0].process is not first and env.envs[0].process.is_alive()
        assert obs[:, 0].tolist() == [0.0, 2.0] and trunc.tolist() == [True, False]
        obs, reward, term, trunc, infos = _step(env)  # sub-env 1 raises at its lifetime step 3
        assert infos["env_restarted"].tolist() == [False, True]
        assert "RuntimeError: injected crash at lifetime step 3" in infos["env_error"][1]
        obs, reward, term, trunc, infos = _step(env, 2)  # the rebuilt sub-env 1 exits at its lifetime step 2
        assert infos["env_restarted"].tolist() == [False, True]
        assert "died" in infos["env_error"][1]
        assert env.restarts.tolist() == [1, 2]
        obs, *_ = _step(env)
        assert obs[:, 0].tolist() == [4.0, 1.0]  # both run on
    finally:
        env.close()
    assert all(not h.process.is_alive() for h in env.envs)


def _Twice(marker_dir: str) -> Faulty:
    """Sub-env 1: the first instance raises at lifetime step 3, the second dies at step 2, the third is healthy."""
    first = not os.path.exists(os.path.join(marker_dir, "raise"))
    if first:
        return Faulty("raise", 3, os.path.join(marker_dir, "raise"))
    return Faulty("die", 2, os.path.join(marker_dir, "die"))


def _cue_delay():
    return gym.make("tracerl/CueDelay-v0", delay=3)


@pytest.mark.faults("A clean env under the resilient wrapper | identical observations, rewards, infos and trained "
                    "parameters as without it; nothing reported | none")
def test_a_clean_env_is_untouched_by_the_wrapper():
    plain = SyncVectorEnv([_cue_delay] * 3, autoreset_mode=AutoresetMode.SAME_STEP)
    wrapped = ResilientVectorEnv([_cue_delay] * 3)
    (o1, i1), (o2, i2) = plain.reset(seed=3), wrapped.reset(seed=3)
    np.testing.assert_array_equal(o1, o2)
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(25):
        a = rng.integers(0, plain.single_action_space.n, size=3)
        r1, r2 = plain.step(a), wrapped.step(a)
        for x, y in zip(r1[:4], r2[:4]):
            np.testing.assert_array_equal(x, y)
        assert set(r1[4]) == set(r2[4]) and "env_restarted" not in r2[4]
        if "final_obs" in r1[4]:
            ended += 1
            assert r1[4]["_final_obs"].tolist() == r2[4]["_final_obs"].tolist()
            for k in np.flatnonzero(r1[4]["_final_obs"]):
                np.testing.assert_array_equal(r1[4]["final_obs"][k], r2[4]["final_obs"][k])
    assert ended > 0
    # and a whole training run is bit-identical
    params = []
    for extra in ({}, {"env_max_restarts": 2}):
        agent = TraceRL(env=_cue_delay, memory="gru", seed=0, verbose=0, n_envs=3, n_steps=8, batch_size=-1,
                        n_epochs=2, hidden_size=8, **extra)
        agent.learn(3 * 8 * 3)
        params.append([p.detach().clone() for p in agent.policy.parameters()])
    assert isinstance(agent.env, ResilientVectorEnv) and agent.env.restarts.sum() == 0
    assert all(torch.equal(a, b) for a, b in zip(*params))


def test_invalid_options_raise_config_error():
    with pytest.raises(ConfigError, match="step_timeout"):
        ResilientVectorEnv([Counter], step_timeout=1.0)  # needs subprocess=True
    with pytest.raises(ConfigError, match="max_restarts"):
        ResilientVectorEnv([Counter], max_restarts=-1)
    with pytest.raises(ConfigError, match="resilient=True"):
        make_vec_env(Counter, n_envs=2, subprocess=True)
    with pytest.raises(ConfigError, match="existing vector env"):
        make_vec_env(SyncVectorEnv([Counter], autoreset_mode=AutoresetMode.SAME_STEP), resilient=True)
    with pytest.raises(ConfigError, match="env_max_restarts"):
        TraceRL(env=Counter, algo="ppo", env_max_restarts=-1, verbose=0)
    env = make_vec_env(Counter, n_envs=2, resilient=True, max_restarts=1)
    assert isinstance(env, ResilientVectorEnv) and env.max_restarts == 1 and env.num_envs == 2


def test_env_errors_are_exported_like_the_other_errors() -> None:
    import tracerl
    import tracerl.errors as errors
    from tracerl.errors import EnvOutputError

    assert tracerl.EnvCrashError is EnvCrashError and tracerl.EnvOutputError is EnvOutputError
    assert {"EnvCrashError", "EnvOutputError"} <= set(tracerl.__all__)
    public = {n for n, v in vars(errors).items() if isinstance(v, type) and issubclass(v, Exception)}
    assert public == set(errors.__all__)
