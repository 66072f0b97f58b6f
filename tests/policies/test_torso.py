"""One network stack: every algorithm's networks are the one torso (encoder -> [previous action, reward] -> memory
core) with its heads, so the same observation space gets the same encoder everywhere, and checkpoints written
while the off-policy torsos had an encoder of their own still load."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from tracerl import TraceRL
from tracerl.algos.registry import available_algos
from tracerl.policies import (ActionCodec, ObservationEncoder, PolicyConfig, RecurrentActorCritic, RecurrentTorso,
                              Torso, flat_dim, preprocess)

CUE = {"delay": 3, "difficulty": 1}
CW = {"horizon": 3, "episode_length": 12}
OFF = dict(learning_starts=16, buffer_size=400, seq_len=3, burn_in=1, state_stride=1, batch_size=3)


def _agent(algo: str, **kw):
    box_actions = algo == "td3"
    return TraceRL(env="tracerl/CountWindow-v0" if box_actions else "tracerl/CueDelay-v0",
                   env_kwargs=CW if box_actions else CUE, algo=algo, seed=0, verbose=0, n_envs=2, hidden_size=8,
                   **(OFF if algo in available_algos("off_policy") else {}), **kw)


@pytest.mark.parametrize("algo", available_algos())
def test_every_algorithm_builds_its_networks_from_the_one_torso(algo):
    agent = _agent(algo)
    nets = (dict(agent.algorithm.torsos()) if algo in available_algos("off_policy") else {"policy": agent.policy})
    assert nets
    for name, net in nets.items():
        assert isinstance(net, Torso), (algo, name)
        assert isinstance(net.encoder, ObservationEncoder), (algo, name)


def _dict_space(image: bool) -> spaces.Dict:
    leaves: dict[str, spaces.Space] = {"pos": spaces.Box(-1.0, 1.0, (2,), np.float32), "flag": spaces.Discrete(3)}
    if image:
        leaves["pixels"] = spaces.Box(0, 255, (8, 8, 1), np.uint8)
    return spaces.Dict(leaves)


@pytest.mark.parametrize("image", [False, True])
def test_a_dict_observation_gets_the_same_encoder_in_ppo_and_offpolicy_networks(image):
    space = _dict_space(image)
    config = PolicyConfig(hidden_size=8, encoder_hidden=(16,))
    ppo = RecurrentActorCritic(space, spaces.Discrete(2), config)
    off = RecurrentTorso(flat_dim(space), ActionCodec(spaces.Discrete(2)), config, observation_space=space)
    assert off.encoder.image_paths == ppo.encoder.image_paths == (("obs['pixels']",) if image else ())
    assert {k: v.shape for k, v in off.encoder.state_dict().items()} == \
        {k: v.shape for k, v in ppo.encoder.state_dict().items()}
    off.encoder.load_state_dict(ppo.encoder.state_dict())
    space.seed(0)
    obs = preprocess(space, {k: np.stack([s.sample() for _ in range(5)]) for k, s in space.spaces.items()})
    torch.testing.assert_close(off.encoder(obs), ppo.encoder(obs))


def test_the_encoder_loads_the_state_dict_of_the_former_offpolicy_mlp():
    torch.manual_seed(0)
    former = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh())
    encoder = ObservationEncoder(spaces.Box(-1.0, 1.0, (3,)), (4,), flat_init="torch")
    encoder.load_state_dict(former.state_dict())
    x = torch.randn(5, 3)
    torch.testing.assert_close(encoder(x), former(x))
    torso = RecurrentTorso(3, ActionCodec(spaces.Discrete(2)), PolicyConfig(hidden_size=4, encoder_hidden=(4,)))
    old_keys = {k.replace("encoder.net.", "encoder."): v.clone() + 1.0 for k, v in torso.state_dict().items()}
    assert "encoder.0.weight" in old_keys
    torso.load_state_dict(old_keys)
    assert torch.equal(torso.encoder.net[0].weight, old_keys["encoder.0.weight"])


def test_an_offpolicy_checkpoint_with_the_former_encoder_keys_loads(tmp_path):
    from checkpoint_edit import read_raw, write_rehashed

    agent = _agent("sac")
    agent.learn(24)
    agent.save(tmp_path / "new.tracerl")
    tensors, meta, kind = read_raw(tmp_path / "new.tracerl")
    renamed = {k.replace(".encoder.net.", ".encoder."): v for k, v in tensors.items()}
    assert renamed.keys() != tensors.keys() and "net.actor_torso.encoder.0.weight" in renamed
    write_rehashed(tmp_path / "old.tracerl", renamed, meta, kind)
    loaded = TraceRL.load(tmp_path / "old.tracerl")
    for name, module in agent.algorithm.modules().items():
        want, got = module.state_dict(), loaded.algorithm.modules()[name].state_dict()
        assert sorted(want) == sorted(got)
        for k in want:
            assert torch.equal(want[k], got[k]), (name, k)
    obs = np.full((1, 3), 0.5, np.float32)
    np.testing.assert_array_equal(agent.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])


def test_a_raw_steps_core_reads_the_flat_pixels_in_ppo_and_offpolicy_networks():
    """Raw steps are what the agent saw: no CNN (nor MLP) in front of the strategic memory, for either network."""
    space = spaces.Box(0, 255, (8, 8, 1), np.uint8)
    config = PolicyConfig(memory="strategic", memory_kwargs={"mem_dim": 8, "max_entries": 4, "n_heads": 2})
    ppo = RecurrentActorCritic(space, spaces.Discrete(3), config)
    off = RecurrentTorso(64, ActionCodec(spaces.Discrete(3)), config, observation_space=space)
    for net in (ppo, off):
        assert len(net.encoder.cnns) == 0 and isinstance(net.encoder.net, torch.nn.Identity)
        assert net.core.input_dim == 64 + 3 + 1
