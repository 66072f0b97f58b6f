"""The fast env path gives what the plain one gives: the same trajectories for the same seeds with sub-envs in
subprocesses (shared-memory observations) as in-process, and the same encoding of Discrete / MultiDiscrete (and
other) observations from the collector's numpy encoder as from :func:`tracerl.policies.encoders.preprocess`."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.vector import AsyncVectorEnv, SyncVectorEnv

from tracerl import TraceRL
from tracerl.data.rollout import RolloutBuffer
from tracerl.policies.encoders import FastPreprocessor, preprocess

_SMALL = dict(n_envs=3, n_steps=16, batch_size=16, n_epochs=2, hidden_size=16, seed=3, verbose=0)


def _trajectory(env_id: str, vectorization: str) -> tuple[RolloutBuffer, list[torch.Tensor]]:
    """Two rollouts and updates; returns the second rollout's buffer and the parameters after both updates."""
    agent = TraceRL(env=env_id, env_vectorization=vectorization, **_SMALL)
    assert isinstance(agent.env, AsyncVectorEnv if vectorization == "async" else SyncVectorEnv)
    try:
        agent.learn(2 * 3 * 16)
        collector = agent.collector
        buf = RolloutBuffer.allocate(agent.policy, 16, 3, agent.config.chunk_len, agent.device)
        with agent.torch_rng.active():  # the agent's own sampling stream, as inside learn()
            collector.collect(buf)
        return buf, [p.detach().clone() for p in agent.policy.parameters()]
    finally:
        agent.env.close()


def _env_ids() -> list:
    ids = [pytest.param("CartPole-v1", id="box")]
    for name, kind in (("RepeatPreviousEasy", "discrete"), ("CountRecallEasy", "multidiscrete")):
        ids.append(pytest.param(f"popgym-{name}-v0", id=kind))
    return ids


@pytest.mark.parametrize("env_id", _env_ids())
def test_subprocess_envs_give_the_same_trajectories_as_in_process_ones(env_id):
    if env_id.startswith("popgym-"):
        pytest.importorskip("popgym")
    plain, plain_params = _trajectory(env_id, "sync")
    fast, fast_params = _trajectory(env_id, "async")
    for name in ("obs", "episode_start", "action", "prev_action", "reward", "done", "log_prob", "value"):
        torch.testing.assert_close(getattr(fast, name), getattr(plain, name), msg=name)
    for a, b in zip(fast_params, plain_params):
        torch.testing.assert_close(a, b)
    assert bool(plain.done.any()) or env_id.startswith("popgym-")  # CartPole episodes end within the rollouts


def test_a_discrete_and_a_multidiscrete_observation_are_encoded_identically_on_both_vector_paths():
    """The obs rows the collector stores (one-hot of Discrete / MultiDiscrete) do not depend on the vector path."""
    popgym = pytest.importorskip("popgym")  # noqa: F841
    for env_id, space_type in (("popgym-RepeatPreviousEasy-v0", spaces.Discrete),
                               ("popgym-CountRecallEasy-v0", spaces.MultiDiscrete)):
        assert isinstance(gymnasium.make(env_id).observation_space, space_type)
        plain, _ = _trajectory(env_id, "sync")
        fast, _ = _trajectory(env_id, "async")
        assert torch.equal(fast.obs, plain.obs)
        assert set(plain.obs.unique().tolist()) == {0.0, 1.0}  # one-hots


_SPACES = {
    "discrete": spaces.Discrete(5, start=-2),
    "multidiscrete": spaces.MultiDiscrete(np.array([[2, 3], [4, 2]]), start=np.array([[0, 1], [-1, 0]])),
    "box": spaces.Box(-2.0, 2.0, (2, 3), np.float64),
    "multibinary": spaces.MultiBinary(4),
    "tuple": spaces.Tuple((spaces.Discrete(3), spaces.MultiDiscrete([2, 2]), spaces.Box(-1.0, 1.0, (2,)))),
    "dict": spaces.Dict({"a": spaces.Discrete(4), "b": spaces.MultiDiscrete([3, 2])}),
}


@pytest.mark.parametrize("name", list(_SPACES))
@pytest.mark.parametrize("lead", [(), (7,), (4, 3)])
def test_the_collectors_encoder_equals_preprocess(name, lead):
    space = _SPACES[name]
    space.seed(0)
    n = int(np.prod(lead, dtype=np.int64)) or 1
    samples = [space.sample() for _ in range(n)]

    def batch(items):
        first = items[0]
        if isinstance(first, dict):
            return {k: batch([it[k] for it in items]) for k in first}
        if isinstance(first, tuple):
            return tuple(batch([it[i] for it in items]) for i in range(len(first)))
        arr = np.stack([np.asarray(it) for it in items])
        return arr.reshape(*lead, *arr.shape[1:]) if lead else arr[0]

    obs = batch(samples)
    fast = FastPreprocessor(space)(obs, torch.device("cpu"))
    reference = preprocess(space, obs, "cpu")
    assert fast.dtype == reference.dtype == torch.float32
    assert torch.equal(fast, reference)


@pytest.mark.parametrize(("space", "bad"), [(spaces.Discrete(3), np.array([0, 3])),
                                             (spaces.MultiDiscrete([2, 2]), np.array([[0, 1], [2, 0]])),
                                             (spaces.Box(-1.0, 1.0, (2,)), np.zeros((2, 3)))])
def test_bad_observations_raise_the_same_error_on_both_encoders(space, bad):
    with pytest.raises(ValueError) as reference:
        preprocess(space, bad)
    with pytest.raises(ValueError) as fast:
        FastPreprocessor(space)(bad)
    assert str(fast.value) == str(reference.value)


def test_the_encoder_returns_its_own_memory_not_the_envs_buffer():
    space = spaces.Box(-1.0, 1.0, (3,), np.float32)
    obs = np.zeros((2, 3), np.float32)
    out = FastPreprocessor(space)(obs)
    obs[:] = 1.0  # a vector env writes the next step's observations into the same array
    assert float(out.abs().sum()) == 0.0
