"""Checkpoints of runs with env runners: every runner's carry, sampling streams, env state and episode statistics.

:meth:`RunnerGroup.save_state <tracerl.distributed.group.RunnerGroup.save_state>` writes ``runners.<i>.carry.*``,
``runners.<i>.sampler`` and ``runners.<i>.env.*`` tensors and ``meta["runners"]``; :func:`restore_runner_group`
checks them all against the live agent (shapes, dtypes, action values, statistics; the env state in each runner
against its env) and then starts the runners from them, so a resumed run equals an uninterrupted one on envs with
``get_state``/``set_state``. Everything in the file is untrusted: a mismatch raises CheckpointError naming the
file and the entry.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..errors import CheckpointError
from ..io.restore_checks import (building_on_meta, check_action_values, check_episode_stats, check_int,
                                 check_tensor_like, check_tensors_like, entry_errors)


def _generator_state_size() -> int:
    return int(torch.Generator().get_state().numel())


def restore_runner_group(learner: Any, agent: Any, where: str, tensors: dict[str, Tensor],
                         meta: dict[str, Any]) -> Any:
    """The learner's :class:`~tracerl.distributed.group.RunnerGroup`, started from the checkpoint's runner state;
    None when the checkpoint holds none (saved before learning) or its envs could not save their state (the next
    ``learn()`` then resets the runners: new episodes)."""
    saved = {k[len("runners."):]: v for k, v in tensors.items() if k.startswith("runners.")}
    rmeta = meta.get("runners")
    if rmeta is None:
        if saved:
            raise CheckpointError("the checkpoint holds runner tensors but no runner metadata", path=where,
                                  entry="meta.runners")
        return None
    if not isinstance(rmeta, dict) or not isinstance(rmeta.get("per_runner"), list):
        raise CheckpointError("must be a JSON object with a per_runner list", path=where, entry="meta.runners")
    n = check_int(rmeta.get("n"), where, "meta.runners.n", 1, 1024)
    if n != learner.extras.runners or len(rmeta["per_runner"]) != n:
        raise CheckpointError(f"the checkpoint holds {n} runners ({len(rmeta['per_runner'])} described) but the "
                              f"agent has runners={learner.extras.runners}", path=where, entry="meta.runners.n")
    per_meta = rmeta["per_runner"]
    if any(not isinstance(m, dict) for m in per_meta):
        raise CheckpointError("must be a list of JSON objects", path=where, entry="meta.runners.per_runner")
    if any(m.get("env_state") is None for m in per_meta):
        return None  # envs without get_state: the next learn() resets the runners
    n_envs = learner.config.n_envs
    if n_envs % n:
        raise CheckpointError(f"n_envs={n_envs} is not divisible by the checkpoint's {n} runners", path=where,
                              entry="meta.runners.n")
    k = n_envs // n
    policy = learner.policy
    expected = {"obs": torch.empty(k, policy.obs_dim), "episode_start": torch.empty(k, dtype=torch.bool),
                "prev_action": torch.empty(k, *policy.action_shape, dtype=policy.action_dtype),
                "prev_reward": torch.empty(k)}
    with building_on_meta():  # shapes only
        expected.update({f"state.{name}": v for name, v in policy.initial_state(k, "meta").items()})
    expected.update({f"info.{name}": torch.empty(k) for name in learner._info_keys()})
    states = []
    for i in range(n):
        carry = {name[len(f"{i}.carry."):]: v for name, v in saved.items() if name.startswith(f"{i}.carry.")}
        check_tensors_like(carry, expected, where, f"runners.{i}.carry.")
        check_action_values(agent.action_space, carry["prev_action"], where, f"runners.{i}.carry.prev_action")
        sampler = check_tensor_like(saved.get(f"{i}.sampler"), (k, _generator_state_size()), torch.uint8, where,
                                    f"runners.{i}.sampler")
        env_arrays = {name[len(f"{i}.env."):]: v for name, v in saved.items() if name.startswith(f"{i}.env.")}
        check_episode_stats(per_meta[i].get("stats"), k, where, f"meta.runners.per_runner[{i}].stats")
        total = check_int(per_meta[i].get("total_steps"), where, f"meta.runners.per_runner[{i}].total_steps", 0,
                          2**62)
        states.append({"carry": carry, "sampler": sampler, "stats": per_meta[i]["stats"], "total_steps": total,
                       "env": (env_arrays, per_meta[i]["env_state"])})
    check_episode_stats(rmeta.get("stats"), n_envs, where, "meta.runners.stats")
    total_steps = check_int(rmeta.get("total_steps"), where, "meta.runners.total_steps", 0, 2**62)
    group = learner._new_runner_group(agent)
    group.reset(seed=agent.seed)
    with entry_errors(where, "runners", "runner state does not fit"):
        group.load_state(states, total_steps, rmeta["stats"], where)
    return group


__all__ = ["restore_runner_group"]
