"""``tracerl record``: write episodes of one or more policies on an env to a Minari dataset.

Example (a mixed-quality dataset on the delayed-cue task, 100 expert, 500 random and 400 wrong-answer episodes)::

    tracerl record --env tracerl/CueDelay-v0 --env-kwargs delay=16 difficulty=1 \\
        --policy expert=100 random=500 wrong=400 --out runs/cue16-mixed
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Sequence

import tyro

from tracerl.errors import ConfigError

from .dataset import DEFAULT_DATASET_ID


@dataclasses.dataclass
class RecordArgs:
    """Record episodes of one or more policies on an env into a Minari dataset (HDF5)."""

    env: str
    """Env id, e.g. tracerl/CueDelay-v0 or CartPole-v1."""
    out: str
    """Dataset directory to create (the files go in OUT/data; minari.MinariDataset('OUT/data') reads it)."""
    policy: tuple[str, ...] = ("random=100",)
    """Policies and their episode counts as NAME=EPISODES: 'random', a scripted policy of the env ('expert', 'wrong'
    for tracerl/CueDelay-v0 and tracerl/TMazePassive-v0) or a checkpoint file / run directory of a trained agent
    (its label in the dataset is the text before '=')."""
    env_kwargs: tuple[str, ...] = ()
    """Env keyword arguments as KEY=VALUE."""
    env_module: tuple[str, ...] = ()
    """Python modules an env id may import ('module:Env-v0')."""
    n_envs: int = 8
    """Sub-envs stepped together."""
    seed: int = 0
    """Seeds the env resets, the order of the policies' episodes and the random policies."""
    deterministic: bool = False
    """Agents act greedily instead of sampling."""
    info_keys: tuple[str, ...] = ()
    """Info keys to store (default: every numeric info the env reports)."""
    dataset_id: str = DEFAULT_DATASET_ID
    """Minari dataset id, namespace/name-vN."""
    overwrite: bool = False
    """Replace an existing dataset at OUT."""


def parse_policy_specs(specs: Sequence[str], env_id: str) -> list[tuple[str, Any, int]]:
    """``["expert=100", "random=400", "runs/a=50"]`` -> ``[(label, policy, episodes), ...]``; checkpoints are loaded.
    A malformed item raises :class:`ConfigError` naming it."""
    from .experts import EXPERTS

    scripted = EXPERTS.get(env_id, {})
    out: list[tuple[str, Any, int]] = []
    for spec in specs:
        name, sep, count = spec.rpartition("=")
        if not sep or not name:
            raise ConfigError(f"--policy: expected NAME=EPISODES, got {spec!r}")
        try:
            episodes = int(count)
        except ValueError as exc:
            raise ConfigError(f"--policy {spec!r}: EPISODES={count!r} is not an int") from exc
        if episodes < 0:
            raise ConfigError(f"--policy {spec!r}: EPISODES must be >= 0")
        if name == "random":
            policy: Any = "random"
        elif name in scripted:
            policy = scripted[name]
        elif Path(name).exists():
            from tracerl.agent import TraceRL
            from tracerl.io.rundir import resolve_checkpoint

            policy = TraceRL.load(resolve_checkpoint(name), verbose=0)
        else:
            known = ["random", *scripted]
            raise ConfigError(f"--policy {spec!r}: {name!r} is not {', '.join(repr(k) for k in known)} nor an "
                              f"existing checkpoint or run directory (scripted policies exist for "
                              f"{', '.join(sorted(EXPERTS))}).")
        out.append((name, policy, episodes))
    return out


def record_main(argv: Sequence[str]) -> int:
    """``tracerl record``'s entry point; returns the exit code (errors propagate to :func:`tracerl.cli.main`)."""
    from tracerl.keyvalue import parse_kwargs

    from .recorder import record

    args = tyro.cli(RecordArgs, args=list(argv), prog="tracerl record")
    if args.n_envs < 1:
        raise ConfigError(f"--n-envs={args.n_envs} is invalid; it must be >= 1.")
    env_kwargs = parse_kwargs(args.env_kwargs, "--env-kwargs")
    policies = parse_policy_specs(args.policy, args.env)
    summary = record(args.env, args.out, policies, n_envs=args.n_envs, seed=args.seed, env_kwargs=env_kwargs,
                     info_keys=list(args.info_keys) or None, deterministic=args.deterministic,
                     dataset_id=args.dataset_id, overwrite=args.overwrite, import_modules=args.env_module)
    print(f"wrote {summary.episodes} episodes, {summary.steps} steps to {summary.path} (Minari HDF5; "
          f"minari.MinariDataset('{Path(summary.path) / 'data'}'))")
    for label, row in summary.per_policy.items():
        rate = row["success_rate"]
        print(f"  {label:24s} episodes {int(row['episodes']):6d}   mean return {row['mean_return']:8.3f}   "
              f"success {'-' if math.isnan(rate) else f'{rate:.3f}'}")
    return 0

