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
