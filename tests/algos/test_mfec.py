"""MFEC (Blundell et al. 2016): Monte Carlo returns written at the episode's end, tables that keep the highest
return, fixed random keys, the one agent's resume with the tables' contents, and learning a memory task from a
random recurrent embedding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from tracerl import TraceRL
from tracerl.algos.mfec import MFEC, MFECConfig
from tracerl.algos.recurrent_nets import ActionCodec
from tracerl.evaluation import evaluate
from tracerl.policies.policy import PolicyConfig

CUE = "tracerl/CueDelay-v0"


def _algorithm(**cfg) -> MFEC:
    config = MFECConfig(n_envs=1, **cfg)
    torch.manual_seed(0)
    return MFEC(3, ActionCodec(spaces.Discrete(2)), config, PolicyConfig(memory="mlp", hidden_size=4))


def _episode(alg: MFEC, feats: torch.Tensor, rewards: list[float], truncated: bool = False,
             final: torch.Tensor | None = None) -> list[int]:
    """Run one scripted episode of ``len(rewards)`` steps for one actor; the actions taken."""
    actions = []
    for t, r in enumerate(rewards):
        actions.append(int(alg.act({"q": feats[t:t + 1]})[0]))
        end = t == len(rewards) - 1
        alg.observe(np.array([r], np.float32), np.array([end and not truncated]), np.array([end and truncated]),
                    final)
    return actions


def _value(alg: MFEC, feat: torch.Tensor, action: int) -> float:
    """The table entry of ``feat``'s key for ``action`` (there must be exactly one)."""
    key = alg.keys(feat[None])[0]
    n = int(alg.dnd.size[action])
    hits = ((alg.dnd.keys[action, :n] - key) ** 2).sum(-1) <= 1e-9
    assert int(hits.sum()) == 1
    return float(alg.dnd.values[action, :n][hits][0])


def test_mfec_writes_the_discounted_monte_carlo_return_of_every_step_at_the_episodes_end():
    alg = _algorithm(gamma=0.5, epsilon=0.0)
    feats = torch.randn(4, 4, generator=torch.Generator().manual_seed(0))
    actions = _episode(alg, feats, [1.0, 0.0, 2.0])
    assert int(alg.dnd.size.sum()) == 3 and len(alg.pending) == 0
    expected = [1.0 + 0.5 * 0.0 + 0.25 * 2.0, 0.0 + 0.5 * 2.0, 2.0]
    for t in range(3):
        assert _value(alg, feats[t], actions[t]) == pytest.approx(expected[t])


def test_mfec_keeps_nothing_pending_written_before_the_episode_ends():
    alg = _algorithm()
    alg.act({"q": torch.randn(1, 4)})
    alg.observe(np.zeros(1, np.float32), np.array([False]), np.array([False]), None)
    assert int(alg.dnd.size.sum()) == 0 and len(alg.pending) == 1


def test_mfec_tables_keep_the_highest_return_seen_for_a_state_and_action():
    alg = _algorithm(gamma=1.0, epsilon=0.0)
    feats = torch.randn(2, 4, generator=torch.Generator().manual_seed(1))
    alg.dnd.alpha = 0.0  # the max rule, not a moving average, must decide
    first = _episode(alg, feats, [1.0, 3.0])   # returns 4, 3
    assert _value(alg, feats[0], first[0]) == 4.0
    second = _episode(alg, feats, [0.0, 1.0])  # greedy: the same actions, returns 1, 1: kept at 4 and 3
    assert second == first
    assert _value(alg, feats[0], first[0]) == 4.0 and _value(alg, feats[1], first[1]) == 3.0
    _episode(alg, feats, [5.0, 2.0])           # returns 7, 2
    assert _value(alg, feats[0], first[0]) == 7.0 and _value(alg, feats[1], first[1]) == 3.0
    assert int(alg.dnd.size.sum()) == 2


def test_a_truncated_mfec_episode_adds_the_discounted_estimate_of_its_final_observation():
    alg = _algorithm(gamma=0.5, epsilon=0.0)
    gen = torch.Generator().manual_seed(2)
    final = torch.randn(1, 4, generator=gen)
    alg.dnd.write(alg.keys(final), torch.tensor([1]), torch.tensor([8.0]))  # Q(final, 1) = 8 (exact match)
    feats = torch.randn(2, 4, generator=gen)
    actions = _episode(alg, feats, [1.0, 1.0], truncated=True, final=final)
    assert _value(alg, feats[1], actions[1]) == pytest.approx(1.0 + 0.5 * 8.0)
    assert _value(alg, feats[0], actions[0]) == pytest.approx(1.0 + 0.5 * (1.0 + 0.5 * 8.0))


def test_mfec_keys_are_a_fixed_random_projection_of_the_untrained_torso():
    alg = _algorithm(key_dim=6)
    assert not any(p.requires_grad for p in alg.torso.parameters()) and alg.optimizers() == {}
    x = torch.randn(3, 4)
    assert torch.allclose(alg.keys(x), x @ alg.projection.matrix)
    assert alg.keys(x).shape == (3, 6)


def _agent(**kw):
    base = dict(env=CUE, env_kwargs={"delay": 4, "difficulty": 1}, algo="mfec", memory="gru", seed=0, verbose=0,
                n_envs=4, hidden_size=16, buffer_size=400)
    base.update(kw)
    return TraceRL(**base)


def test_mfec_checkpoint_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    straight = _agent(dnd_capacity=20).learn(208)
    first = _agent(dnd_capacity=20).learn(104)
    assert len(first.learner.algorithm.pending) > 0
    first.save(tmp_path / "a.tracerl")
    resumed = TraceRL.load(tmp_path / "a.tracerl", env=CUE)
    resumed.learn(104, reset_num_timesteps=False)
    for name, t in straight.learner.algorithm.dnd.state_tensors().items():
        assert torch.equal(t, resumed.learner.algorithm.dnd.state_tensors()[name]), name
    assert torch.equal(straight.learner.algorithm.projection.matrix, resumed.learner.algorithm.projection.matrix)
    assert straight.collector.stats.to_json() == resumed.collector.stats.to_json()
    assert straight.learner.algorithm.n_updates == 0


def test_mfec_with_a_random_recurrent_embedding_learns_cue_delay_with_distractors():
    """Chance is 50 %: the random GRU's state carries the cue, and the tables learn which answer pays."""
    agent = _agent().learn(2000)
    assert evaluate(agent, CUE, 200, env_kwargs={"delay": 4, "difficulty": 1}).success_rate >= 0.9
