"""One benchmark run: train a :class:`~tracerl.bench.agents.Trainer` on its budget with periodic
held-out evaluations (training clock paused), then evaluate it in every mode of the protocol.

A run has an env-step budget and, optionally, a training-time budget (``time_budget`` seconds of training
wall-clock, evaluations excluded): the agent stops at whichever comes first (or at the threshold when the
protocol says so), and the record says which (``stopped_by``) and how many steps it reached."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from .agents import Trainer
from .envs import EnvSpec
from .protocol import EvalProtocol, PausableClock, eval_seed, evaluate_model


@dataclass
class EvalPoint:
    """One evaluation during or after training (deterministic actions)."""

    steps: int
    train_seconds: float
    success: float
    mean_return: float


@dataclass
class RunMetrics:
    """What one run measured.

    Attributes:
        train_steps: env steps trained (whole rollouts, so it can exceed the budget slightly).
        train_seconds: training time with every evaluation excluded.
        wall_seconds: the whole run: building the agent, training and evaluating.
        steps_per_second: ``train_steps / train_seconds``.
        steps_to_threshold: env steps at the first periodic evaluation whose success reached the
            threshold (and was confirmed, see ``EvalProtocol.confirm``), or at the final evaluation when
            that is the first to reach it (None: never within the budget).
        seconds_to_threshold: training seconds at that point.
        final: ``{mode: EvalResult.to_json()}`` of the final evaluation.
        curve: periodic evaluations (and confirmations), then the final deterministic one.
        time_budget: the training-time budget in seconds (None: none).
        stopped_by: why training ended: ``"budget"`` (the env-step budget), ``"time"`` (the time budget)
            or ``"threshold"`` (``stop_at_threshold``).
        env_rate: the env's own random-action stepping rate, measured in the same process right before and right
            after training (``env_rate_steps`` > 0, :func:`measure_env_rate`): ``{"steps_per_second"`` (the mean of
            ``"before"`` and ``"after"``), ``"vector_env"`` (class name), ``"n_envs"}``; None when not measured.
    """

    train_steps: int
    train_seconds: float
    wall_seconds: float
    steps_per_second: float
    steps_to_threshold: int | None
    seconds_to_threshold: float | None
    final: dict[str, dict[str, float]]
    curve: list[EvalPoint] = field(default_factory=list)
    time_budget: float | None = None
    stopped_by: str = "budget"
    env_rate: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return asdict(self)


def random_action_rate(env: Any, steps: int, seed: int = 0) -> float:
    """Env steps per second of ``env`` (a gymnasium ``VectorEnv`` or an SB3 ``VecEnv``) stepped with random actions:
    reset, then ``ceil(steps / num_envs)`` vector steps cycling through 64 actions sampled beforehand (the sampling
    is not timed). Nothing else runs in between, so this is the most the env allows with that many sub-envs."""
    import numpy as np

    n = int(env.num_envs)
    space = env.action_space
    space.seed(seed)
    if hasattr(env, "single_action_space"):  # gymnasium: a batched action space
        env.reset(seed=seed)
        pool = [space.sample() for _ in range(64)]
    else:  # SB3 VecEnv: one action space per sub-env
        env.seed(seed)
        env.reset()
        pool = [np.stack([space.sample() for _ in range(n)]) for _ in range(64)]
    k = max(1, -(-steps // n))
    t0 = time.perf_counter()
    for i in range(k):
        env.step(pool[i % 64])
    return k * n / max(time.perf_counter() - t0, 1e-9)


def measure_env_rate(trainer: Trainer, steps: int, seed: int) -> dict[str, Any] | None:
    """:func:`random_action_rate` of a fresh copy of the trainer's vector env (``Trainer.env_for_rate``: the same
    class and number of sub-envs, without the agent around it); None when the trainer cannot build one."""
    make = getattr(trainer, "env_for_rate", None)
    env = make() if callable(make) else None
    if env is None:
        return None
    try:
        return {"steps_per_second": random_action_rate(env, steps, seed), "vector_env": type(env).__name__,
                "n_envs": int(env.num_envs)}
    finally:
        env.close()


def train_and_evaluate(
    build: Callable[[], Trainer],
    env: EnvSpec,
    seed: int,
    budget: int,
    protocol: EvalProtocol,
    progress: Any = None,
    time_budget: float | None = None,
    clock: PausableClock | None = None,
    env_rate_steps: int = 0,
) -> RunMetrics:
    """Build the agent, train it up to ``budget`` env steps under ``protocol``, evaluate it.

    Args:
        build: zero-argument factory of the trainer (its construction counts in ``wall_seconds`` only).
        env: the task; evaluation uses ``env.id`` and ``env.kwargs`` on held-out seeds.
        seed: the training seed (it also selects the held-out evaluation seeds).
        budget: env steps to train.
        protocol: evaluation settings.
        progress: an optional tqdm-like bar whose ``update(n)`` gets env steps as they are trained.
        time_budget: seconds of training (evaluation excluded) after which the agent is stopped, at the
            first moment its library allows (SB3: the next vector step or optimizer step; tracerl: the end of
            the update in progress).
        clock: the training clock (default: a new :class:`PausableClock` on ``time.perf_counter``).
        env_rate_steps: > 0: also measure the env's own random-action stepping rate on that many env steps, right
            before and right after training, outside the training clock (:func:`measure_env_rate`).
    """
    wall0 = time.perf_counter()
    trainer = build()
    clock = PausableClock() if clock is None else clock
    curve: list[EvalPoint] = []
    hit: list[EvalPoint] = []
    state: dict[str, Any] = {"next": protocol.every, "next_s": protocol.every_seconds, "shown": 0, "evals": 0,
                             "timed_out": False}
    if time_budget is not None:
        def out_of_time() -> bool:
            if clock.elapsed >= time_budget:
                state["timed_out"] = True
            return bool(state["timed_out"])

        trainer.should_stop = out_of_time

    by_success = env.score == "success"  # the threshold is on success: an env scored by return never reaches it
    # (its "success" is only the fraction of positive returns), so it is neither stopped nor called solved early

    def evaluate_point(steps: int, episodes: int) -> EvalPoint:
        state["evals"] += 1
        res = evaluate_model(trainer.predictor, env.id, env.kwargs,
                             eval_seed(seed, state["evals"], protocol.seed_base), episodes, deterministic=True)
        point = EvalPoint(steps, clock.elapsed, res["success_rate"], res["mean_return"])
        curve.append(point)
        return point

    def on_update(steps: int) -> bool:
        if progress is not None:
            progress.update(steps - state["shown"])
            state["shown"] = steps
        if time_budget is not None and trainer.should_stop():
            return False
        due_steps = protocol.every > 0 and steps >= state["next"]
        due_time = protocol.every_seconds > 0 and clock.elapsed >= state["next_s"]
        if not (due_steps or due_time):
            return True
        clock.pause()
        point = evaluate_point(steps, protocol.episodes)
        if by_success and not hit and point.success >= protocol.threshold:
            if not protocol.confirm or evaluate_point(steps, protocol.final_episodes).success >= protocol.threshold:
                hit.append(point)
        while protocol.every > 0 and state["next"] <= steps:
            state["next"] += protocol.every
        while protocol.every_seconds > 0 and state["next_s"] <= clock.elapsed:
            state["next_s"] += protocol.every_seconds
        clock.start()
        if protocol.stop_at_threshold and hit:
            state["threshold_stop"] = True
            return False
        return True

    rates = [measure_env_rate(trainer, env_rate_steps, seed)] if env_rate_steps > 0 else []
    clock.start()
    trainer.train(budget, on_update)
    clock.pause()
    if rates and rates[0] is not None:
        rates.append(measure_env_rate(trainer, env_rate_steps, seed))
    env_rate = None
    if len(rates) == 2 and rates[1] is not None:
        before, after = rates[0]["steps_per_second"], rates[1]["steps_per_second"]  # type: ignore[index]
        env_rate = {**rates[1], "steps_per_second": (before + after) / 2, "before": before, "after": after}
    steps = trainer.num_timesteps
    if progress is not None:
        progress.update(max(steps - state["shown"], 0))
    final: dict[str, dict[str, float]] = {}
    for mode in protocol.modes:
        final[mode] = evaluate_model(trainer.predictor, env.id, env.kwargs, eval_seed(seed, 0, protocol.seed_base),
                                     protocol.final_episodes, deterministic=mode == "deterministic")
    det = final.get("deterministic")
    if det is not None:
        point = EvalPoint(steps, clock.elapsed, det["success_rate"], det["mean_return"])
        curve.append(point)
        if by_success and not hit and point.success >= protocol.threshold:
            hit.append(point)
    train_s = clock.elapsed
    stopped_by = "threshold" if state.get("threshold_stop") else "time" if state["timed_out"] else "budget"
    return RunMetrics(
        train_steps=steps, train_seconds=train_s, wall_seconds=time.perf_counter() - wall0,
        steps_per_second=steps / max(train_s, 1e-9),
        steps_to_threshold=hit[0].steps if hit else None,
        seconds_to_threshold=hit[0].train_seconds if hit else None,
        final=final, curve=curve, time_budget=time_budget, stopped_by=stopped_by, env_rate=env_rate,
    )
