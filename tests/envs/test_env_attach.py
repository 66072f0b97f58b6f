"""Attaching an env: spaces are compared, eval --env OTHER does not inherit the checkpoint's kwargs, malformed env
outputs name the env index, and a hung subprocess env times out by default."""

from __future__ import annotations

from functools import partial

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv

from tracerl import TraceRL
from tracerl.cli import EvalArgs, _load_checkpoint_and_env, main
from tracerl.envs import make_vec_env
from tracerl.envs import resilient as resilient_mod
from tracerl.envs.cue_delay import CueDelay
from tracerl.envs.output_check import check_batch
from tracerl.envs.resilient import DEFAULT_STEP_TIMEOUT, ResilientVectorEnv
from tracerl.envs.vector import _vectorize
from tracerl.errors import ConfigError, EnvOutputError
from tracerl.evaluation import evaluate

from test_resilient import Counter, Faulty  # noqa: E402 (tests/envs is on sys.path)


def _small(env="tracerl/CueDelay-v0", **kw):
    base = dict(n_envs=2, n_steps=8, batch_size=16, hidden_size=8, encoder_hidden=(8,), verbose=0, seed=0)
    base.update(kw)
    return TraceRL(env=env, **base)


@pytest.fixture
def cue_checkpoint(tmp_path):
    path = tmp_path / "cue.tracerl"
    _small(env_kwargs={"delay": 3}).save(path)
    return path


@pytest.mark.faults("TraceRL.load(path, env=Pendulum-v1) / evaluate(agent, Pendulum-v1) / set_env for an agent trained "
                    "on CueDelay | ConfigError naming both observation and both action spaces, before any step | none")
@pytest.mark.parametrize("how", ["load", "evaluate", "set_env", "load_offpolicy"])
def test_an_env_with_other_spaces_is_refused_naming_both(cue_checkpoint, tmp_path, how):
    with pytest.raises(ConfigError) as info:
        if how == "load":
            TraceRL.load(cue_checkpoint, env="Pendulum-v1", verbose=0)
        elif how == "evaluate":
            evaluate(TraceRL.load(cue_checkpoint, verbose=0), "Pendulum-v1", n_episodes=2)
        elif how == "set_env":
            TraceRL.load(cue_checkpoint, verbose=0).set_env("Pendulum-v1")
        else:
            path = tmp_path / "r2d2.tracerl"
            TraceRL(env="tracerl/CueDelay-v0", algo="r2d2", n_envs=2, hidden_size=8, verbose=0, seed=0,
                    buffer_size=1000).save(path)
            TraceRL.load(path, env="Pendulum-v1", verbose=0)
    msg = str(info.value)
    assert "observation space Box([-1. -1. -8.], [1. 1. 8.], (3,), float32)" in msg  # Pendulum's
    assert "Box(-1.0, 1.0, (3,), float32)" in msg  # the agent's (CueDelay)
    assert "action space Box(-2.0, 2.0, (1,), float32)" in msg and "Discrete(2)" in msg


def _fixed_cue():
    """A CueDelay-like env whose constructor takes no kwargs (delay 5)."""
    return CueDelay(delay=5)


@pytest.fixture
def other_env_id():
    env_id = "test/FixedCue-v0"
    if env_id not in gym.registry:
        gym.register(env_id, entry_point=_fixed_cue)
    yield env_id
    gym.registry.pop(env_id, None)


@pytest.mark.faults("tracerl eval --env OTHER on a checkpoint with env kwargs | the stored kwargs are not forced onto "
                    "the other env; --env-kwargs replaces them | none")
def test_eval_with_another_env_does_not_force_the_stored_kwargs(cue_checkpoint, other_env_id, capsys):
    assert main(["eval", str(cue_checkpoint), "--episodes", "2", "--env", other_env_id]) == 0  # was: delay=3 forced
    args = EvalArgs(checkpoint=str(cue_checkpoint), env=other_env_id)
    assert _load_checkpoint_and_env(args, "tracerl eval")[2] == {}
    same = EvalArgs(checkpoint=str(cue_checkpoint), env="tracerl/CueDelay-v0")
    assert _load_checkpoint_and_env(same, "tracerl eval")[2] == {"delay": 3}
    replaced = EvalArgs(checkpoint=str(cue_checkpoint), env_kwargs=("delay=7",))
    assert _load_checkpoint_and_env(replaced, "tracerl eval")[2] == {"delay": 7}
    assert main(["eval", str(cue_checkpoint), "--episodes", "2", "--env-kwargs", "delay=7"]) == 0


# -- malformed env outputs ------------------------------------------------------------------------------------
class Bad(Counter):
    """A Counter whose step ``at`` returns a malformed ``what`` (obs shape, obs dtype or a vector reward)."""

    def __init__(self, what: str, at: int = 2) -> None:
        super().__init__(length=50)
        self.what, self.at = what, at

    def step(self, action):
        obs, reward, term, trunc, info = super().step(action)
        if self.life >= self.at:
            if self.what == "vector_reward":
                reward = np.array([1.0, 2.0])
            elif self.what == "obs_shape":
                obs = np.zeros(4, dtype=np.float32)
            elif self.what == "obs_dtype":
                obs = np.array(["a"])
        return obs, reward, term, trunc, info


class Corrupting(VectorEnv):
    """A user's own SAME_STEP vector env (not built by tracerl) whose batched step outputs are corrupted."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, what: str, n: int = 3) -> None:
        self.inner = SyncVectorEnv([Counter] * n, autoreset_mode=AutoresetMode.SAME_STEP)
        self.num_envs, self.what = n, what
        self.single_observation_space = self.inner.single_observation_space
        self.single_action_space = self.inner.single_action_space
        self.observation_space, self.action_space = self.inner.observation_space, self.inner.action_space

    def reset(self, *, seed=None, options=None):
        return self.inner.reset(seed=seed, options=options)

    def step(self, actions):
        obs, reward, term, trunc, info = self.inner.step(actions)
        if self.what == "vector_reward":
            reward = np.stack([reward, reward], axis=1)
        elif self.what == "obs_shape":
            obs = obs[:, None]
        elif self.what == "obs_rows":
            obs = np.array([obs[0], obs[1], np.zeros(3)], dtype=object)
        elif self.what == "done_shape":
            term = term[:2]
        return obs, reward, term, trunc, info


@pytest.mark.faults("A sub-env returns a vector reward, an observation of the wrong shape or a string observation "
                    "(PPO and R2D2 collectors, gymnasium SyncVectorEnv) | EnvOutputError naming the env index and "
                    "what was returned vs expected | none (raised before the step enters a rollout or replay)")
@pytest.mark.parametrize("algo", ["ppo", "r2d2"])
@pytest.mark.parametrize("what", ["vector_reward", "obs_shape", "obs_dtype"])
def test_a_malformed_sub_env_output_names_its_index(algo, what):
    fns = [Counter, partial(Bad, what), Counter]
    vec = _vectorize(fns, "sync")  # how make_vec_env builds a gymnasium vector env: every sub-env is checked
    kwargs = {"n_steps": 8, "batch_size": -1} if algo == "ppo" else {"buffer_size": 600, "learning_starts": 10**6}
    agent = TraceRL(env=vec, algo=algo, verbose=0, seed=0, hidden_size=8, **kwargs)
    with pytest.raises(EnvOutputError) as info:
        agent.learn(60)
    assert info.value.env_index == 1 and "env index 1" in str(info.value)


@pytest.mark.faults("A user's own vector env returns a [N, 2] reward, a mis-shaped or ragged observation batch or "
                    "done flags of the wrong length (PPO and SAC collectors) | EnvOutputError naming the env "
                    "indices and the shapes | none")
@pytest.mark.parametrize("algo", ["ppo", "r2d2"])
@pytest.mark.parametrize("what", ["vector_reward", "obs_shape", "obs_rows", "done_shape"])
def test_a_malformed_batch_from_a_custom_vector_env_is_an_env_output_error(algo, what):
    kwargs = {"n_steps": 8, "batch_size": -1} if algo == "ppo" else {"buffer_size": 600, "learning_starts": 10**6}
    agent = TraceRL(env=Corrupting(what), algo=algo, verbose=0, seed=0, hidden_size=8, **kwargs)
    with pytest.raises(EnvOutputError, match="env index") as info:
        agent.learn(60)
    if what == "obs_rows":
        assert info.value.env_index == 2 and "env index [2]" in str(info.value)


def test_check_batch_accepts_well_formed_outputs():
    space = spaces.Dict({"a": spaces.Box(0, 1, (2,)), "b": spaces.Discrete(3)})
    obs = {"a": np.zeros((4, 2), np.float32), "b": np.zeros(4, np.int64)}
    check_batch(space, 4, obs, np.zeros(4), np.zeros(4, bool), [False] * 4)
    with pytest.raises(EnvOutputError, match=r"\['a'\]"):
        check_batch(space, 4, {"a": np.zeros((4, 3)), "b": np.zeros(4)}, np.zeros(4), np.zeros(4), np.zeros(4))


# -- hanging envs --------------------------------------------------------------------------------------------
@pytest.mark.faults("A subprocess sub-env hangs in step and no step_timeout is given | killed after the default "
                    "DEFAULT_STEP_TIMEOUT (60 s) and rebuilt like a crash (here shortened to 1 s) | the interrupted "
                    "episode")
def test_a_hung_subprocess_env_times_out_by_default(tmp_path, monkeypatch):
    assert DEFAULT_STEP_TIMEOUT == 60.0
    monkeypatch.setattr(resilient_mod, "DEFAULT_STEP_TIMEOUT", 1.0)
    env = ResilientVectorEnv([partial(Faulty, "hang", 2, str(tmp_path / "hang"))], max_restarts=1, subprocess=True)
    try:
        assert env.step_timeout == 1.0
        env.reset(seed=0)
        env.step(np.zeros(1, dtype=np.int64))
        _, _, _, trunc, infos = env.step(np.zeros(1, dtype=np.int64))  # sleeps: killed after the default timeout
        assert trunc.tolist() == [True] and infos["env_restarted"].tolist() == [True]
        assert "did not answer step within the timeout" in infos["env_error"][0]
    finally:
        env.close()


def test_an_infinite_step_timeout_waits_for_ever_and_in_process_envs_get_none():
    assert ResilientVectorEnv([Counter]).step_timeout is None  # in-process: cannot be interrupted
    with pytest.raises(ConfigError, match="step_timeout"):
        ResilientVectorEnv([Counter], step_timeout=float("nan"), subprocess=True)
