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
