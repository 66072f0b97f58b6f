"""The evaluation protocol: held-out seeds, periodic and final evaluations, a pausable training clock.

Evaluation always goes through :func:`tracerl.evaluation.evaluate`, which calls
``model.predict(obs, state, episode_start, deterministic=...)`` and feeds the returned state back on
every step: tracerl's signature and SB3's too (``RecurrentPPO`` carries its LSTM state this way; plain
``PPO`` ignores it). Evaluation episodes come from seeds far from any training seed.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

from ..errors import ConfigError

EVAL_SEED_BASE = 1_000_000
"""Evaluation seeds start here; training seeds are small ints, so evaluation episodes are held out."""

MODES: tuple[str, ...] = ("deterministic", "stochastic")
"""Action-selection modes of an evaluation: the distribution's mode, or a sample."""


def eval_seed(train_seed: int, index: int, base: int = EVAL_SEED_BASE) -> int:
    """Seed of the ``index``-th evaluation of the run trained with ``train_seed``.

    Sub-env ``i`` of an evaluation uses ``seed + i`` (``i < 16``), so evaluations never share episodes,
    and the k-th evaluation of a given training seed sees the same episodes whatever the agent.
    Index 0 is the final evaluation; periodic ones (and their confirmations) count from 1.
    """
    return base + 10_000 * train_seed + 16 * index


@dataclass(frozen=True)
class EvalProtocol:
    """How runs are evaluated.

    Attributes:
        episodes: episodes per periodic evaluation (deterministic actions).
        every: env steps between periodic evaluations (0: none by steps).
        every_seconds: training seconds between periodic evaluations (0: none by time); with both, an
            evaluation runs when either is due.
        final_episodes: episodes of the final evaluation, run in every mode of ``modes``.
        threshold: success rate that counts as solved (steps-to-threshold is the first evaluation at it).
        stop_at_threshold: stop training at the first periodic evaluation that reaches ``threshold`` (success;
            envs scored by return are never stopped or counted as solved by it).
        confirm: a periodic evaluation at the threshold counts only when a second one, on
            ``final_episodes`` fresh held-out episodes, also reaches it (guards against lucky draws).
        modes: final-evaluation modes, a subset of ``("deterministic", "stochastic")``; the first is the
            score of the run.
        seed_base: first evaluation seed (see :func:`eval_seed`).
    """

    episodes: int = 100
    every: int = 4096
    every_seconds: float = 0.0
    final_episodes: int = 200
    threshold: float = 0.95
    stop_at_threshold: bool = False
    confirm: bool = True
    modes: tuple[str, ...] = MODES
    seed_base: int = EVAL_SEED_BASE

    def validate(self, where: str = "protocol") -> None:
        """Raise :class:`ConfigError` naming the first invalid field and its value."""
        def bad(name: str, rule: str) -> ConfigError:
            return ConfigError(f"{where}.{name} = {getattr(self, name)!r} is invalid: {rule}")

        for name in ("episodes", "final_episodes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad(name, "must be an integer >= 1")
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 0:
            raise bad("every", "must be an integer >= 0 (0: final evaluation only)")
        if isinstance(self.every_seconds, bool) or not isinstance(self.every_seconds, (int, float)) \
                or not 0.0 <= self.every_seconds < float("inf"):
            raise bad("every_seconds", "must be a number of seconds >= 0 (0: no evaluations by time)")
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)) \
                or not 0.0 <= self.threshold <= 1.0:
            raise bad("threshold", "must be a number in [0, 1]")
        for name in ("stop_at_threshold", "confirm"):
            if not isinstance(getattr(self, name), bool):
                raise bad(name, "must be true or false")
        if not self.modes or any(m not in MODES for m in self.modes) or len(set(self.modes)) != len(self.modes):
            raise bad("modes", f"must be a non-empty list of distinct values from {list(MODES)}")
        if isinstance(self.seed_base, bool) or not isinstance(self.seed_base, int) or self.seed_base < 0:
            raise bad("seed_base", "must be an integer >= 0")

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form (``every_seconds`` only when set, so older run ids stay the same)."""
        out = asdict(self)
        out["modes"] = list(self.modes)
        if not self.every_seconds:
            del out["every_seconds"]
        return out


class PausableClock:
    """A wall clock (``time.perf_counter``, or ``timer``) that can be paused, e.g. while evaluating."""

    def __init__(self, timer: Callable[[], float] | None = None) -> None:
        self._timer = time.perf_counter if timer is None else timer
        self._elapsed = 0.0
        self._since: float | None = None

    def start(self) -> None:
        """Start or resume counting (no-op while running)."""
        if self._since is None:
            self._since = self._timer()

    def pause(self) -> None:
        """Stop counting (no-op while paused)."""
        if self._since is not None:
            self._elapsed += self._timer() - self._since
            self._since = None

    @property
    def running(self) -> bool:
        """Whether the clock is counting."""
        return self._since is not None

    @property
    def elapsed(self) -> float:
        """Seconds counted so far."""
        running = 0.0 if self._since is None else self._timer() - self._since
        return self._elapsed + running


def evaluate_model(model: Any, env_id: str, env_kwargs: dict[str, Any], seed: int, episodes: int,
                   deterministic: bool = True) -> dict[str, float]:
    """Held-out evaluation of any model with tracerl's / SB3's ``predict``: ``EvalResult.to_json()``
    (episodes, mean_return, std_return, success_rate, mean_length)."""
    from ..evaluation import evaluate

    result = evaluate(model, env_id, n_episodes=episodes, deterministic=deterministic, seed=seed,
                      env_kwargs=dict(env_kwargs))
    return result.to_json()


TIME_CLOCKS: tuple[str, ...] = ("wall", "cpu")
"""How an equal-time run counts its training seconds (:func:`training_clock`)."""


def training_clock(kind: str = "wall") -> PausableClock:
    """The clock of an equal-time run: ``"wall"`` counts wall-clock seconds (``time.perf_counter``); ``"cpu"``
    counts the CPU seconds of the run's own process (``time.process_time``, all its threads). Every benchmark
    run is single-threaded, so on a free core the two agree; on a machine shared with other jobs the CPU clock
    still gives each agent the compute it would have had alone (what it computed, not how long it waited for a
    core). Work done in other processes (subprocess vector envs) is not counted: such runs are refused under
    the CPU clock."""
    if kind == "wall":
        return PausableClock()
    if kind == "cpu":
        return PausableClock(timer=time.process_time)
    raise ConfigError(f"time_clock = {kind!r} is invalid: one of {', '.join(TIME_CLOCKS)}")
