"""Record episodes from any policy on any env into a trajectory dataset (:mod:`tracerl.offline.dataset`).

A *policy* is anything acting like :meth:`tracerl.TraceRL.predict` on a batch, with its memory as explicit state:

    ``actions, state = policy(obs [B, ...], state, episode_start [B] bool, prev_reward [B] float)``

:func:`as_policy` turns what users have into one: a :class:`~tracerl.TraceRL` agent (or anything with such a
``predict``, e.g. a trained :class:`~tracerl.offline.decision_transformer.SequencePolicy`), ``"random"`` (uniform
actions), or a scripted callable ``fn(obs, state, episode_start) -> (actions, state)`` (see
:mod:`tracerl.offline.experts`). The recorder steps a SAME_STEP-autoreset vector env (tracerl's tasks natively
batched), gives each new episode to the next policy of a shuffled schedule (``{"expert": 100, "random": 400}``:
exactly that many episodes of each, for mixed-quality datasets), and keeps every episode it started with a policy,
whatever its length, so no policy's short episodes are over-represented.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from gymnasium import spaces

from tracerl.data.leaves import stack_leaves
from tracerl.errors import ConfigError, DatasetError

from .dataset import DEFAULT_DATASET_ID, Episode, write_dataset

PolicyFn = Callable[..., tuple[Any, Any]]
"""``(obs, state, episode_start, prev_reward) -> (actions, state)``."""

SKIPPED_INFO_KEYS = frozenset({"final_obs", "final_info", "env_error", "episode"})
"""Vector-info keys the recorder never stores (autoreset plumbing, tracebacks, nested statistics)."""


class RandomPolicy:
    """Uniform random actions from ``action_space`` (seeded; no state)."""

    def __init__(self, action_space: spaces.Space[Any], seed: int | None = None) -> None:
        self.action_space = action_space
        self.action_space.seed(seed)

    def __call__(self, obs: Any, state: Any, episode_start: np.ndarray, prev_reward: np.ndarray) -> tuple[Any, Any]:
        n = len(episode_start)
        return np.stack([np.asarray(self.action_space.sample()) for _ in range(n)]), None


class PredictPolicy:
    """Adapts an object with ``predict(obs, state, episode_start=..., deterministic=..., prev_reward=...)``
    (a :class:`~tracerl.TraceRL` agent, a :class:`~tracerl.offline.decision_transformer.SequencePolicy`)."""

    def __init__(self, agent: Any, deterministic: bool = False) -> None:
        self.agent = agent
        self.deterministic = deterministic
        params = inspect.signature(agent.predict).parameters
        self._reward = "prev_reward" in params

    def __call__(self, obs: Any, state: Any, episode_start: np.ndarray, prev_reward: np.ndarray) -> tuple[Any, Any]:
        kwargs: dict[str, Any] = {"deterministic": self.deterministic}
        if self._reward:
            kwargs["prev_reward"] = prev_reward
        action, state = self.agent.predict(obs, state, episode_start=episode_start, **kwargs)
        return np.asarray(action), state


class ScriptedPolicy:
    """Adapts a scripted ``fn(obs, state, episode_start) -> (actions, state)`` (``prev_reward`` is passed too when
    ``fn`` takes a fourth parameter)."""

    def __init__(self, fn: Callable[..., tuple[Any, Any]]) -> None:
        self.fn = fn
        try:
            n = len(inspect.signature(fn).parameters)
        except (TypeError, ValueError):
            n = 3
        self._reward = n >= 4

    def __call__(self, obs: Any, state: Any, episode_start: np.ndarray, prev_reward: np.ndarray) -> tuple[Any, Any]:
        if self._reward:
            action, state = self.fn(obs, state, episode_start, prev_reward)
        else:
            action, state = self.fn(obs, state, episode_start)
        return np.asarray(action), state


def as_policy(policy: Any, action_space: spaces.Space[Any], seed: int | None = None,
              deterministic: bool = False) -> Callable[..., tuple[Any, Any]]:
    """A recorder policy from ``"random"``, an object with ``predict`` (an agent), or a scripted callable."""
    if isinstance(policy, str):
        if policy == "random":
            return RandomPolicy(action_space, seed)
        raise ConfigError(f"policy={policy!r} is not a policy; pass 'random', an agent or a callable "
                          "(the CLI also takes expert names and checkpoint paths).")
    if isinstance(policy, (RandomPolicy, PredictPolicy, ScriptedPolicy)):
        return policy
    if hasattr(policy, "predict") and callable(policy.predict):
        return PredictPolicy(policy, deterministic)
    if callable(policy):
        return ScriptedPolicy(policy)
    raise ConfigError(f"policy={policy!r} (type {type(policy).__name__}) is not a policy; pass 'random', an agent "
                      "with predict() or a callable fn(obs, state, episode_start) -> (actions, state).")


def _single(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _single(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_single(v) for v in value)
    return np.array(value)


def _row(value: Any, i: int) -> Any:
    """Row ``i`` of a batched observation (array, or dict / tuple of arrays); gymnasium's ``final_obs`` of a
    Dict / Tuple space is an object array of single observations instead."""
    if isinstance(value, np.ndarray) and value.dtype == object:
        return _single(value[i])
    if isinstance(value, dict):
        return {k: _row(v, i) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_row(v, i) for v in value)
    return np.array(np.asarray(value)[i])




def _info_entries(infos: Mapping[str, Any], i: int, keys: set[str] | None) -> dict[str, Any]:
    """Row ``i``'s entries of a gymnasium vector-info dict: key -> value where ``infos["_" + key][i]``."""
    out: dict[str, Any] = {}
    for key, value in infos.items():
        if key.startswith("_") or key in SKIPPED_INFO_KEYS or isinstance(value, dict):
            continue
        if keys is not None and key not in keys:
            continue
        mask = infos.get("_" + key)
        if mask is not None and not bool(np.asarray(mask)[i]):
            continue
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError):
            continue
        if arr.ndim == 0 or arr.dtype == object or arr.dtype.kind in "USV":
            continue
        out[key] = np.array(arr[i])
    return out


class _Running:
    """One sub-env's episode in progress."""

    def __init__(self, label: str, obs: Any, reset_info: dict[str, Any], seed: int | None) -> None:
        self.label = label
        self.obs = [obs]
        self.actions: list[Any] = []
        self.rewards: list[float] = []
        self.terms: list[bool] = []
        self.truncs: list[bool] = []
        self.infos: list[dict[str, Any]] = [reset_info]
        self.seed = seed

    def finish(self) -> Episode:
        n = len(self.infos)
        keys: dict[str, np.ndarray] = {}
        for key in sorted({k for info in self.infos for k in info}):
            present = np.array([key in info for info in self.infos], dtype=bool)
            sample = next(np.asarray(info[key]) for info in self.infos if key in info)
            values = np.zeros((n, *sample.shape), dtype=sample.dtype)
            for t, info in enumerate(self.infos):
                if key in info:
                    values[t] = info[key]
            keys[key] = values
            keys["_" + key] = present
        return Episode(observations=stack_leaves(self.obs), actions=stack_leaves(self.actions),
                       rewards=np.asarray(self.rewards, dtype=np.float64),
                       terminations=np.asarray(self.terms, dtype=bool), truncations=np.asarray(self.truncs, dtype=bool),
                       infos=keys, policy=self.label, seed=self.seed)


def _normalise_policies(policies: Any) -> list[tuple[str, Any, int]]:
    if isinstance(policies, Mapping):
        items = [(str(label), *value) for label, value in policies.items()]
    else:
        items = [tuple(p) for p in policies]
    out = []
    for item in items:
        if len(item) != 3:
            raise ConfigError(f"policies: {item!r} is not (label, policy, episodes); pass "
                              "{'label': (policy, episodes), ...}.")
        label, policy, count = item
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
            raise ConfigError(f"policies[{label!r}]: episodes={count!r} is invalid; it must be an int >= 0.")
        out.append((str(label), policy, int(count)))
    labels = [label for label, _, _ in out]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"policies: labels {labels} repeat; give every policy its own label.")
    if sum(c for _, _, c in out) < 1:
        raise ConfigError("policies: no episodes asked for; give at least one policy a count >= 1.")
    return out


def collect_episodes(
    env: Any,
    policies: Mapping[str, tuple[Any, int]] | Sequence[tuple[str, Any, int]],
    n_envs: int = 8,
    seed: int = 0,
    env_kwargs: Mapping[str, Any] | None = None,
    info_keys: Sequence[str] | None = None,
    deterministic: bool = False,
    import_modules: Sequence[str] = (),
) -> tuple[list[Episode], Any, Any]:
    """Run the policies on ``env`` and return the episodes with the env's single observation and action spaces.

    Args:
        env: an env id (``"tracerl/CueDelay-v0"``, any gymnasium id), a gymnasium env, a zero-arg env factory, or a
            SAME_STEP-autoreset vector env (see :func:`tracerl.envs.make_vec_env`).
        policies: ``{label: (policy, episodes)}`` (or ``[(label, policy, episodes), ...]``): each policy acts in
            exactly ``episodes`` episodes; the episodes' order is a seeded shuffle, so a mixture is spread over
            the sub-envs and over time. A policy is ``"random"``, an agent with ``predict`` or a scripted callable
            (:func:`as_policy`).
        n_envs: sub-envs stepped together.
        seed: seeds the env resets, the schedule and the random policies.
        env_kwargs: keyword arguments of an env id.
        info_keys: info keys to store (None: every numeric info the env reports, except
            :data:`SKIPPED_INFO_KEYS`). A listed key the env never reports is an error.
        deterministic: agents act greedily (their ``predict(deterministic=True)``).
        import_modules: modules an env id may import (:func:`tracerl.envs.make_vec_env`).

    Returns:
        ``(episodes, observation_space, action_space)``: episodes in the order they ended.
    """
    from tracerl.envs import make_vec_env

    items = _normalise_policies(policies)
    total = sum(c for _, _, c in items)
    if isinstance(n_envs, bool) or not isinstance(n_envs, int) or n_envs < 1:
        raise ConfigError(f"collect_episodes: n_envs={n_envs!r} is invalid; it must be an int >= 1.")
    vec = make_vec_env(env, n_envs=min(n_envs, total), seed=seed, env_kwargs=dict(env_kwargs or {}) or None,
                       import_modules=import_modules)
    try:
        obs_space, act_space = vec.single_observation_space, vec.single_action_space
        rng = np.random.default_rng(seed)
        acting = {label: as_policy(p, act_space, seed=int(rng.integers(2**31)), deterministic=deterministic)
                  for label, p, _ in items}
        schedule = [label for label, _, c in items for _ in range(c)]
        schedule = [schedule[i] for i in rng.permutation(len(schedule))]
        keys = set(info_keys) if info_keys is not None else None
        episodes = _run(vec, acting, schedule, seed, keys)
    finally:
        if vec is not env:  # a vector env the caller passed stays open
            vec.close()
    if keys is not None:
        seen = {k for ep in episodes for k in ep.infos}
        missing = sorted(keys - seen)
        if missing:
            raise ConfigError(f"collect_episodes: info_keys {missing} never appeared in the env's infos "
                              f"(it reported {sorted(k for k in seen if not k.startswith('_'))}).")
    return episodes, obs_space, act_space


def _run(vec: Any, acting: Mapping[str, Any], schedule: list[str], seed: int, keys: set[str] | None) -> list[Episode]:
    n = vec.num_envs
    obs, reset_infos = vec.reset(seed=seed)
    # keys the env reports at reset; at an autoreset only these are the new episode's reset info (tracerl's batched
    # tasks also repeat the ended episode's success at the top level)
    reset_keys = {k for i in range(n) for k in _info_entries(reset_infos, i, keys)}
    queue = list(reversed(schedule))
    running: list[_Running | None] = []
    for i in range(n):
        label = queue.pop() if queue else None
        running.append(None if label is None else
                       _Running(label, _row(obs, i), _info_entries(reset_infos, i, keys), seed + i))
    states: dict[str, Any] = {label: None for label in acting}
    # a policy skipped on a step would miss an episode start: once a policy has acted it is called on every step
    starts = np.ones(n, dtype=bool)
    prev_reward = np.zeros(n, dtype=np.float32)
    called = {label: False for label in acting}
    done_episodes: list[Episode] = []
    while any(r is not None for r in running):
        actions: list[Any] = [None] * n
        fallback = None
        for label, policy in acting.items():
            rows = [i for i, r in enumerate(running) if r is not None and r.label == label]
            if not rows and not called[label]:
                continue
            first = not called[label]
            act, states[label] = policy(obs, None if first else states[label], starts if not first
                                        else np.ones(n, dtype=bool), prev_reward)
            called[label] = True
            act = np.asarray(act)
            if act.shape[:1] != (n,):
                raise ConfigError(f"policy {label!r} returned actions of shape {act.shape} for {n} observations; "
                                  "it must return one action per observation.")
            fallback = act if fallback is None else fallback
            for i in rows:
                actions[i] = act[i]
        for i in range(n):
            if actions[i] is None:
                actions[i] = fallback[i] if fallback is not None else vec.single_action_space.sample()
        batch = np.stack([np.asarray(a) for a in actions])
        next_obs, rewards, terminated, truncated, infos = vec.step(batch)
        terminated = np.asarray(terminated, dtype=bool)
        truncated = np.asarray(truncated, dtype=bool)
        done = terminated | truncated
        final_info = infos.get("final_info", {}) if done.any() else {}
        final_obs = infos.get("final_obs") if done.any() else None
        for i in range(n):
            ep = running[i]
            if ep is None:  # the schedule ran out: this sub-env's episodes are not recorded
                continue
            ep.actions.append(np.array(batch[i]))
            ep.rewards.append(float(rewards[i]))
            ep.terms.append(bool(terminated[i]))
            ep.truncs.append(bool(truncated[i]))
            if done[i]:
                if final_obs is None:
                    raise DatasetError(f"sub-env {i} ended an episode without infos['final_obs'] (a crashed and "
                                       "restarted env?); the episode's last observation is unknown.")
                ep.infos.append(_info_entries(final_info, i, keys) if isinstance(final_info, dict) else {})
                ep.obs.append(_row(final_obs, i))
                done_episodes.append(ep.finish())
                label = queue.pop() if queue else None
                running[i] = None if label is None else _Running(
                    label, _row(next_obs, i),
                    {k: v for k, v in _info_entries(infos, i, keys).items() if k in reset_keys}, None)
            else:
                ep.infos.append(_info_entries(infos, i, keys))
                ep.obs.append(_row(next_obs, i))
        obs = next_obs
        starts = done
        prev_reward = np.asarray(rewards, dtype=np.float32)
    return done_episodes


@dataclass
class RecordSummary:
    """What :func:`record` wrote."""

    path: Any
    """The dataset directory."""
    episodes: int
    steps: int
    per_policy: dict[str, dict[str, float]]
    """label -> {"episodes", "mean_return", "success_rate" (NaN when the env reports no success)}."""


def summarise(episodes: Sequence[Episode]) -> dict[str, dict[str, float]]:
    """Per policy label: episode count, mean return and success rate (NaN without ``info["success"]``)."""
    out: dict[str, dict[str, float]] = {}
    for label in sorted({ep.policy or "" for ep in episodes}):
        eps = [ep for ep in episodes if (ep.policy or "") == label]
        succ = [ep.success for ep in eps]
        rate = float(np.mean([bool(s) for s in succ])) if all(s is not None for s in succ) else float("nan")
        out[label] = {"episodes": float(len(eps)), "mean_return": float(np.mean([ep.total_return for ep in eps])),
                      "success_rate": rate}
    return out


def record(
    env: Any,
    out: Any,
    policies: Mapping[str, tuple[Any, int]] | Sequence[tuple[str, Any, int]],
    n_envs: int = 8,
    seed: int = 0,
    env_kwargs: Mapping[str, Any] | None = None,
    info_keys: Sequence[str] | None = None,
    deterministic: bool = False,
    dataset_id: str = DEFAULT_DATASET_ID,
    overwrite: bool = False,
    import_modules: Sequence[str] = (),
) -> RecordSummary:
    """Record episodes (:func:`collect_episodes`) and write them as a Minari dataset at ``out``
    (:func:`~tracerl.offline.dataset.write_dataset`). Returns a :class:`RecordSummary`.

    Example (a mixed-quality dataset on the delayed-cue task)::

        from tracerl.offline import record, experts
        record("tracerl/CueDelay-v0", "runs/cue16-mixed", env_kwargs={"delay": 16, "difficulty": 1},
               policies={"expert": (experts.cue_delay_expert, 100), "random": ("random", 900)})
    """
    from pathlib import Path

    target = Path(out)
    if target.exists() and not overwrite:  # refuse before spending time recording
        raise ConfigError(f"record: {target} exists; pass overwrite=True (--overwrite) to replace it.")
    episodes, obs_space, act_space = collect_episodes(env, policies, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs,
                                                      info_keys=info_keys, deterministic=deterministic,
                                                      import_modules=import_modules)
    counts: dict[str, int] = {}
    for label, _, c in _normalise_policies(policies):
        counts[label] = c
    env_id, kwargs = (env, dict(env_kwargs or {})) if isinstance(env, str) else _recipe(env)
    write_dataset(target, episodes, obs_space, act_space, env_id=env_id, env_kwargs=kwargs, dataset_id=dataset_id,
                  extra={"policies": counts, "seed": int(seed), "n_envs": int(n_envs), "deterministic": deterministic},
                  overwrite=overwrite)
    return RecordSummary(target, len(episodes), sum(len(ep) for ep in episodes), summarise(episodes))


def _recipe(env: Any) -> tuple[str | None, dict[str, Any]]:
    """The id and kwargs that rebuild an env object (:func:`tracerl.envs.recipe.env_recipe`), or (None, {})."""
    from tracerl.envs.recipe import env_recipe

    recipe = env_recipe(env)
    return (recipe.env_id, dict(recipe.env_kwargs)) if recipe is not None else (None, {})


__all__ = ["PredictPolicy", "RandomPolicy", "RecordSummary", "ScriptedPolicy", "as_policy", "collect_episodes",
           "record", "summarise"]
