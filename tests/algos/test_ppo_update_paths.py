"""The faster PPO update computes what the old one did: the Adam kernels (``adam_impl``) and the minibatch loop
(one shuffled copy per epoch, minibatches sliced from it) give the same losses and parameters, up to float
rounding, as the loop before them (a gathered copy per minibatch) with torch's single-tensor Adam."""

from __future__ import annotations

import pytest
import torch

from tracerl import TraceRL
from tracerl.algos.ppo import PPO, make_adam
from tracerl.data.rollout import RolloutBuffer
from tracerl.errors import ConfigError

_CFG = dict(env="tracerl/CueDelay-v0", env_kwargs={"delay": 3, "difficulty": 1}, n_envs=4, n_steps=16,
            batch_size=32, bptt_len=8, n_epochs=3, hidden_size=16, seed=5, verbose=0)


def _old_update(ppo: PPO, buf: RolloutBuffer, generator: torch.Generator) -> list[float]:
    """The minibatch loop as it was before: a gathered copy of every field per minibatch. Returns the losses."""
    ppo.compute_advantages(buf)
    seqs = ppo._sequences(buf)
    states = {k: v.reshape(-1, *v.shape[2:]) for k, v in buf.chunk_states.items()}
    n_seq = seqs["obs"].shape[1]
    per_mb = max(1, ppo.config.batch_size // buf.chunk_len)
    losses = []
    for _ in range(ppo.config.n_epochs):
        perm = torch.randperm(n_seq, generator=generator)
        for start in range(0, n_seq, per_mb):
            idx = perm[start : start + per_mb]
            stats = ppo._step({k: v[:, idx] for k, v in seqs.items()}, {k: v[idx] for k, v in states.items()})
            assert stats is not None
            losses.append(stats["loss"])
    return losses


def _train(adam_impl: str, old_loop: bool, rollouts: int = 3) -> tuple[list[float], list[torch.Tensor]]:
    """Collect and update ``rollouts`` times; the losses of every minibatch and the final parameters."""
    agent = TraceRL(adam_impl=adam_impl, **_CFG)
    if old_loop:  # torch's own CPU default, as PPO built it before adam_impl existed
        agent.ppo.optimizer = torch.optim.Adam(agent.policy.parameters(), lr=agent.config.learning_rate,
                                               eps=agent.config.adam_eps)
    collector = agent._ensure_collector()
    buf = RolloutBuffer.allocate(agent.policy, agent.config.n_steps, 4, agent.config.chunk_len, agent.device)
    losses: list[float] = []
    with agent.torch_rng.active():
        for _ in range(rollouts):
            agent.policy.eval()
            collector.collect(buf)
            agent.policy.train()
            if old_loop:
                losses += _old_update(agent.ppo, buf, agent.minibatch_generator)
            else:
                losses += _minibatch_losses(agent.ppo, buf, agent.minibatch_generator)
    return losses, [p.detach().clone() for p in agent.policy.parameters()]


def _minibatch_losses(ppo: PPO, buf: RolloutBuffer, generator: torch.Generator) -> list[float]:
    """``ppo.update`` with every minibatch's loss recorded."""
    losses: list[float] = []
    step = ppo._step

    def recording(mb, state):
        stats = step(mb, state)
        assert stats is not None
        losses.append(stats["loss"])
        return stats

    ppo._step = recording  # type: ignore[method-assign]
    try:
        ppo.update(buf, generator)
    finally:
        del ppo._step
    return losses


def test_the_new_minibatch_loop_with_single_tensor_adam_repeats_the_old_update():
    old_losses, old_params = _train("single", old_loop=True)
    new_losses, new_params = _train("single", old_loop=False)
    assert len(new_losses) == len(old_losses) == 3 * 3 * 2
    torch.testing.assert_close(torch.tensor(new_losses), torch.tensor(old_losses), rtol=1e-6, atol=1e-7)
    for a, b in zip(new_params, old_params):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("impl", ["fused", "foreach"])
def test_fused_and_foreach_adam_train_like_the_old_update_up_to_float_rounding(impl):
    old_losses, old_params = _train("single", old_loop=True)
    losses, params = _train(impl, old_loop=False)
    assert impl == "foreach" or next(iter(TraceRL(adam_impl=impl, **_CFG).ppo.optimizer.param_groups))["fused"]
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(old_losses), rtol=1e-4, atol=1e-5)
    for a, b in zip(params, old_params):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert any(not torch.equal(a, b) for a, b in zip(params, _train(impl, old_loop=False, rollouts=1)[1]))


def test_the_adam_kernel_is_chosen_by_adam_impl_and_fused_falls_back_where_it_has_no_kernel():
    params = [torch.nn.Parameter(torch.zeros(3))]
    assert make_adam(params, 1e-3, 1e-5, "fused").param_groups[0]["fused"] is True
    assert make_adam(params, 1e-3, 1e-5, "foreach").param_groups[0]["foreach"] is True
    single = make_adam(params, 1e-3, 1e-5, "single").param_groups[0]
    assert single["foreach"] is False and not single["fused"]
    meta = [torch.nn.Parameter(torch.zeros(3, device="meta"))]  # a device without a fused Adam kernel
    assert make_adam(meta, 1e-3, 1e-5, "fused").param_groups[0]["foreach"] is True


@pytest.mark.faults("adam_impl is not fused, foreach or single | ConfigError naming the field and the valid values | none")
def test_a_bad_adam_impl_is_refused_naming_the_valid_ones():
    with pytest.raises(ConfigError, match=r"adam_impl='fast' is invalid: must be one of 'fused', 'foreach', 'single'"):
        TraceRL(adam_impl="fast", **_CFG)
