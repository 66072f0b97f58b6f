"""Evaluate an agent on held-out episodes, carrying its memory correctly across steps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .errors import ConfigError
from .threads import torch_threads


@dataclass
class EvalResult:
    """Per-episode returns, lengths and successes (NaN where the env reports no ``success``)."""

    returns: np.ndarray
    lengths: np.ndarray
    successes: np.ndarray

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std_return(self) -> float:
        return float(np.std(self.returns))

    @property
    def success_rate(self) -> float:
        """Fraction of successful episodes; falls back to the fraction with positive return when
        the env reports no ``info["success"]``."""
        s = self.successes[~np.isnan(self.successes)]
        if s.size == len(self.successes) and s.size:
            return float(np.mean(s))
        return float(np.mean(self.returns > 0))

    def to_json(self) -> dict[str, float]:
        return {"episodes": int(len(self.returns)), "mean_return": self.mean_return,
                "std_return": self.std_return, "success_rate": self.success_rate,
                "mean_length": float(np.mean(self.lengths))}


def evaluate(
    agent: Any,
    env: Any,
    n_episodes: int = 100,
    deterministic: bool = True,
    seed: int | None = 10_000,
    n_envs: int = 16,
    env_kwargs: dict[str, Any] | None = None,
    import_modules: Sequence[str] = (),
) -> EvalResult:
    """Run ``n_episodes`` full episodes with ``agent.predict`` and return their outcomes.

    Every env runs the same number of episodes (give or take one), so short episodes are not
    over-represented. ``seed`` should differ from the training seed: evaluation episodes are held out.
    The memory state is passed back to ``predict`` with ``episode_start`` on every step.

    An env id read from a file (e.g. ``agent.env_id`` of a loaded agent) imports no module through a
    ``"module:Env-v0"`` prefix unless the module is trusted or listed in ``import_modules`` (or was allowed when
    the agent was loaded); see :mod:`tracerl.envs.safe_make`. For tracerl agents the env's observation and action
    spaces must equal the agent's (ConfigError naming both).
    """
    from .envs import make_vec_env
    from .envs.vector import check_env_spaces

    if isinstance(n_episodes, bool) or not isinstance(n_episodes, int) or n_episodes < 1:
        raise ConfigError(f"n_episodes={n_episodes!r} is invalid: must be an int >= 1")
    n_envs = min(n_envs, n_episodes)
    allowed = tuple(import_modules) + tuple(getattr(agent, "import_modules", ()) or ())
    vec = make_vec_env(env, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs, import_modules=allowed)
    if hasattr(agent, "policy_config") and getattr(agent, "observation_space", None) is not None:
        check_env_spaces(vec, agent.observation_space, agent.action_space, what="the agent")
    n_envs = vec.num_envs
    targets = np.array([(n_episodes + i) // n_envs for i in range(n_envs)])
    counts = np.zeros(n_envs, dtype=int)
    obs, _ = vec.reset(seed=seed)
    returns: list[float] = []
    lengths: list[int] = []
    successes: list[float] = []
    use_reward = bool(getattr(getattr(agent, "policy_config", None), "use_prev_reward", False))
    with torch_threads(getattr(agent, "threads", None)):  # the agent's thread count, as learn() uses
        _run_episodes(agent, vec, obs, targets, counts, deterministic, use_reward, returns, lengths, successes)
    vec.close()
    return EvalResult(np.asarray(returns), np.asarray(lengths), np.asarray(successes))


def _run_episodes(agent: Any, vec: Any, obs: Any, targets: np.ndarray, counts: np.ndarray, deterministic: bool,
                  use_reward: bool, returns: list[float], lengths: list[int], successes: list[float]) -> None:
    """Step ``vec`` with ``agent.predict`` (memory carried) until every env ran its ``targets`` episodes,
    appending each finished episode's return, length and success."""
    n_envs = vec.num_envs
    state = None
    starts = np.ones(n_envs, dtype=bool)
    prev_reward = np.zeros(n_envs, dtype=np.float32)
    ret = np.zeros(n_envs)
    length = np.zeros(n_envs, dtype=int)
    while (counts < targets).any():
        action, state = agent.predict(obs, state, starts, deterministic=deterministic,
                                      **({"prev_reward": prev_reward} if use_reward else {}))
        obs, reward, terminated, truncated, infos = vec.step(action)
        done = np.asarray(terminated) | np.asarray(truncated)
        ret += reward
        length += 1
        final = infos.get("final_info", {}) if done.any() else {}
        for i in np.flatnonzero(done):
            if counts[i] < targets[i]:
                returns.append(float(ret[i]))
                lengths.append(int(length[i]))
                ok = final.get("success") if isinstance(final, dict) else None
                has = isinstance(final, dict) and final.get("_success", np.zeros(n_envs, bool))[i]
                successes.append(float(ok[i]) if ok is not None and has else float("nan"))
                counts[i] += 1
        ret[done] = 0.0
        length[done] = 0
        starts = done
        prev_reward = np.asarray(reward, dtype=np.float32)
