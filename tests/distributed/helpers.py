"""Small PPO setups shared by the env-runner tests."""

from typing import Any

import torch

from tracerl import TraceRL

SMALL = dict(env="tracerl/CueDelay-v0", env_kwargs={"delay": 2}, memory="gru", hidden_size=16, n_envs=4, n_steps=16,
             bptt_len=8, n_epochs=2, batch_size=32, verbose=0)


def small_agent(**overrides: Any) -> TraceRL:
    return TraceRL(**{**SMALL, "seed": 3, **overrides})


def same_weights(a: TraceRL, b: TraceRL) -> bool:
    sa, sb = a.policy.state_dict(), b.policy.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def matching_weights(a: TraceRL, b: TraceRL) -> bool:
    """Weights equal up to float rounding (1e-6): runs whose sub-envs act in different row blocks (one process
    with all envs against N runners with a share each) round differently, because torch's matrix products are not
    bit-identical across batch sizes (the acting GRU's states already differ by ~1e-9 between 4 rows and 2 x 2
    rows). Their actions and episode returns stay equal; compare those exactly."""
    sa, sb = a.policy.state_dict(), b.policy.state_dict()
    return sa.keys() == sb.keys() and all(torch.allclose(sa[k], sb[k], rtol=1e-5, atol=1e-6) for k in sa)


OFF = dict(env="tracerl/CueDelay-v0", env_kwargs={"delay": 6}, algo="r2d2", memory="gru", hidden_size=16, n_envs=4,
           seq_len=4, burn_in=0, batch_size=16, learning_starts=0, buffer_size=2000, runners=2, runner_steps=8,
           verbose=0)


def off_agent(**overrides: Any) -> TraceRL:
    """A small R2D2 agent with 2 env runners (2 sub-envs each)."""
    return TraceRL(**{**OFF, "seed": 3, **overrides})


def replayed_greedy_actions(agent: TraceRL, chunks: int = 4) -> tuple[Any, Any, Any]:
    """Greedy R2D2 runners (epsilon 0) act ``chunks`` chunks with random weights (no update); the learner
    samples windows from the runners' replay and replays them from the stored states, and from the initial state.
    Returns the stored actions of the windows' steps and the two replays' greedy actions on the same steps."""
    from tracerl.algos.offpolicy import batch_state, unroll

    learner = agent.learner
    group = learner.ensure_collector(agent)
    learner.begin(agent, True)
    alg = agent.algorithm
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # random weights whose greedy action depends on the memory (larger ones saturate the GRU)
        for module in (alg.q_torso, alg.q_head):
            for p in module.parameters():
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))
    for _ in range(chunks):
        group.next_chunk()
    assert alg.n_updates == 0  # the runners acted with exactly these weights
    batch, shards = group.sample(64, 0.0)
    assert set(shards.tolist()) == {0, 1}  # windows from both runners' shards
    b = batch.burn_in
    steps = batch.has_action[b:]
    with torch.no_grad():
        stored = alg.q_head(unroll(alg.q_torso, batch, batch_state(batch, "q"), grad=False)).argmax(-1)
        zero = alg.q_head(unroll(alg.q_torso, batch, alg.q_torso.initial_state(batch.N, "cpu"),
                                 grad=False)).argmax(-1)
    return batch.action[b:][steps], stored[steps], zero[steps]
