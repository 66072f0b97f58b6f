"""What tracerl's batched numpy envs share: per-sub-env generators, seeding, partial resets, SAME_STEP
autoreset info, and state capture for exact resume.

A subclass keeps its episodes in per-env numpy arrays (attributes named ``_<name>`` for every ``name`` in
``_STATE_ARRAYS``), lists its configuration attributes in ``_CONFIG_KEYS``, and implements
``_reset_rows`` (start new episodes in some rows, drawing from ``self._rng(row, seed)``) and
``_reset_result`` (the observations and infos ``reset`` returns). Its ``step`` calls :meth:`_require_reset`
first and :meth:`_autoreset` for the rows whose episodes ended.

Seeding follows :class:`gymnasium.vector.SyncVectorEnv`: ``reset(seed=s)`` seeds sub-env ``i`` with
``s + i`` (or ``seed[i]`` for a list), so the batch equals ``N`` single envs seeded the same way.
"""

from __future__ import annotations

import abc
from typing import Any, Callable, Sequence

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from ..errors import ConfigError


def expand_seeds(seed: Any, num_envs: int) -> list[int | None]:
    """One seed per sub-env: None -> ``[None] * N``, an int s -> ``[s, s + 1, ...]``, a list is checked."""
    if seed is None:
        return [None] * num_envs
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return [int(seed) + i for i in range(num_envs)]
    seeds = list(seed)
    if len(seeds) != num_envs:
        raise ValueError(f"If seeds are passed as a list the length must match num_envs={num_envs} "
                         f"but got length={len(seeds)}.")
    return seeds


class BatchedEnv(gymnasium.vector.VectorEnv, metaclass=abc.ABCMeta):
    """Base of the batched numpy envs (see the module docstring for what a subclass provides)."""

    metadata: dict[str, Any] = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}
    _CONFIG_KEYS: tuple[str, ...] = ()
    _STATE_ARRAYS: dict[str, type] = {}

    def _check_actions(self, actions: Any) -> np.ndarray:
        """Validate a batch of ``Discrete(n)`` actions (ints ``[N]`` in ``0..n-1``) and return it as int64 ``[N]``;
        ValueError naming the env class, the shape and the valid values otherwise."""
        n = int(self.single_action_space.n)  # type: ignore[attr-defined]
        a = np.asarray(actions)
        if a.shape != (self.num_envs,) or not np.issubdtype(a.dtype, np.integer) or ((a < 0) | (a >= n)).any():
            values = ", ".join(str(v) for v in range(n))
            raise ValueError(f"{type(self).__name__}: actions must be an int array of shape ({self.num_envs},) with "
                             f"values in {{{values}}}, got {actions!r}.")
        return a.astype(np.int64)

    def _init_batched(self, num_envs: Any, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        """Validate ``num_envs`` and set the spaces, the autoreset mode and empty generators."""
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ConfigError(f"{type(self).__name__}: num_envs={num_envs!r} is invalid; it must be an int >= 1.")
        self.num_envs = int(num_envs)
        self.autoreset_mode = AutoresetMode.SAME_STEP
        self.metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}
        self.render_mode = None
        self.single_observation_space = observation_space
        self.single_action_space = action_space
        self.observation_space = batch_space(observation_space, self.num_envs)
        self.action_space = batch_space(action_space, self.num_envs)
        self._rngs: list[np.random.Generator | None] = [None] * self.num_envs
        self._was_reset = False

    @property
    def np_random(self) -> tuple[np.random.Generator | None, ...]:  # type: ignore[override]
        """The per-sub-env generators (None before the first reset)."""
        return tuple(self._rngs)

    def _rng(self, row: int, seed: int | None) -> np.random.Generator:
        """Sub-env ``row``'s generator, (re)seeded when ``seed`` is given or it has none yet."""
        if seed is not None or self._rngs[row] is None:
            self._rngs[row], _ = seeding.np_random(seed)
        rng = self._rngs[row]
        assert rng is not None
        return rng

    @abc.abstractmethod
    def _reset_rows(self, rows: np.ndarray, seeds: Sequence[int | None]) -> None:
        """Start new episodes in ``rows`` (int array), drawing from ``self._rng(row, seed)``."""

    @abc.abstractmethod
    def _reset_result(self, mask: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """Observations and infos of a reset of the bool-masked rows."""

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every sub-env (or those in ``options["reset_mask"]``, a bool array ``[N]``).

        Args:
            seed: None (keep/create generators), an int s (sub-env i gets s + i) or a list of ``N`` seeds.
        """
        seeds = expand_seeds(seed, self.num_envs)
        mask = np.ones(self.num_envs, dtype=np.bool_)
        if options is not None and "reset_mask" in options:
            mask = np.asarray(options["reset_mask"])
            if mask.shape != (self.num_envs,) or mask.dtype != np.bool_ or not mask.any():
                raise ValueError(f"options['reset_mask'] must be a bool array of shape ({self.num_envs},) with a "
                                 f"True value, got {mask!r}.")
            if not self._was_reset and not mask.all():
                raise RuntimeError(f"{type(self).__name__}: the first reset must reset every sub-env; call reset() "
                                   "without reset_mask.")
        rows = np.flatnonzero(mask)
        self._reset_rows(rows, [seeds[r] for r in rows.tolist()])
        self._was_reset = True
        return self._reset_result(mask)

    def _require_reset(self) -> None:
        if not self._was_reset:
            raise RuntimeError(f"{type(self).__name__}.step() called before reset(); call reset() first.")

    def _autoreset(
        self, obs: np.ndarray, done: np.ndarray, final_info: dict[str, np.ndarray],
        observe: Callable[[np.ndarray], np.ndarray],
    ) -> dict[str, Any]:
        """SAME_STEP autoreset of the ``done`` rows, in place on ``obs``.

        Records ``final_obs``/``final_info`` (each key of ``final_info`` masked by ``done``, gymnasium's
        vector-info layout), starts new episodes in those rows and writes their first observations,
        ``observe(done)[done]``, into ``obs``. Returns the infos to merge (empty if nothing ended).
        """
        if not done.any():
            return {}
        final_obs = np.zeros_like(obs)
        final_obs[done] = obs[done]
        info: dict[str, Any] = {}
        for key, value in final_info.items():
            info[key] = np.where(done, value, np.zeros_like(value))
            info[f"_{key}"] = done.copy()
        rows = np.flatnonzero(done)
        self._reset_rows(rows, [None] * rows.size)
        obs[done] = observe(done)[done]
        return {"final_obs": final_obs, "_final_obs": done.copy(), "final_info": info, "_final_info": done.copy()}

    # -- checkpoint support ---------------------------------------------------------------------------
    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Everything needed to continue exactly: the episode arrays, and JSON (RNG states, configuration)."""
        arrays = {name: getattr(self, f"_{name}").copy() for name in self._STATE_ARRAYS}
        state: dict[str, Any] = {"rngs": [None if g is None else g.bit_generator.state for g in self._rngs],
                                 "was_reset": self._was_reset, "num_envs": self.num_envs}
        state.update({key: getattr(self, key) for key in self._CONFIG_KEYS})
        return arrays, state

    def set_state(self, arrays: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        """Restore what :meth:`get_state` captured. Raises ValueError if it came from a differently configured env."""
        for key in ("num_envs", *self._CONFIG_KEYS):
            if state.get(key) != getattr(self, key):
                raise ValueError(f"env state has {key}={state.get(key)!r}, this env has {getattr(self, key)!r}")
        for name, dtype in self._STATE_ARRAYS.items():
            setattr(self, f"_{name}", np.asarray(arrays[name], dtype=dtype).copy())
        rngs: list[np.random.Generator | None] = []
        for st in state["rngs"]:
            if st is None:
                rngs.append(None)
            else:
                g, _ = seeding.np_random(0)
                g.bit_generator.state = st
                rngs.append(g)
        self._rngs = rngs
        self._was_reset = bool(state["was_reset"])
