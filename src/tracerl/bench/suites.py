"""Suites: agents x envs x seeds x budget x evaluation protocol, built in (Python) or from a TOML file.

A TOML suite::

    name = "mine"
    description = "GRU against the baselines at delay 8"
    seeds = [0, 1]
    budget = 20000                       # env steps per run
    agents = ["sb3-ppo", "tracerl-gru"]  # or [[agents]] tables: name, budget (a cap), kwargs
    sweep = "delay"                      # optional: report the longest delay each agent solves
    escalate = true                      # optional: stop an agent at its first unsolved delay
    time_budget = 60                     # optional: also compare at 60 s of training each
    time_clock = "cpu"                   # optional: count those seconds as the run's CPU time ("wall" default)
    env_rate_steps = 16384               # optional: also time the env alone (random actions), for the report
    compare_steps = true                 # optional: false = equal time only

    [[envs]]
    id = "tracerl/CueDelay-v0"
    kwargs = { delay = 8, difficulty = 1 }
    budget = 30000                       # optional, replaces the suite's budget on this env
    eval_every = 4096                    # optional, replaces protocol.every on this env
    score = "success"                    # optional: "success" or "return" (default "return" for popgym-*)

    [protocol]                           # fields of EvalProtocol
    every = 4096
    stop_at_threshold = true

A run's budget is the env's budget (else the suite's), capped by the agent's ``budget`` when it has one.

Two comparisons: **equal env steps** (every run trains on its budget) and **equal training time**
(``time_budget = 60``: every agent trains for that many seconds of training wall-clock, evaluations
excluded, and the steps it reached are recorded; ``time_step_cap`` bounds the steps of such a run). A suite
has the first unless ``compare_steps = false``, the second when ``time_budget`` is set; the report gives
both, each opening with one sentence per env saying who reached what within the budget.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import ConfigError
from .agents import SB3_AGENTS, available_agents, get_agent
from .envs import POPGYM_EASY, SCORES, EnvSpec, check_env_id, cue_delay, popgym_env
from .protocol import TIME_CLOCKS, EvalProtocol


@dataclass(frozen=True)
class AgentEntry:
    """An agent of a suite: a registered name, keyword arguments for its constructor, a budget cap."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    budget: int | None = None


@functools.lru_cache(maxsize=1024)
def _agent_settings_json(agent: str, env_json: str) -> str | None:
    try:
        spec = get_agent(agent)
    except ConfigError:  # not a registered agent: its name and kwargs identify it
        return None
    if spec.settings is None:
        return None
    return json.dumps(spec.settings(EnvSpec(**json.loads(env_json))), sort_keys=True, default=str)


def _agent_settings(agent: str, env: EnvSpec) -> Any:
    """:attr:`AgentSpec.settings` of ``agent`` on ``env`` (None for agents without), cached per process."""
    text = _agent_settings_json(agent, env.key())
    return None if text is None else json.loads(text)


@dataclass(frozen=True)
class RunSpec:
    """One run of a suite; :meth:`run_id` keys it in the results file."""

    suite: str
    agent: str
    agent_kwargs: dict[str, Any]
    env: EnvSpec
    seed: int
    budget: int
    protocol: EvalProtocol
    eval_every: int
    time_budget: float | None = None
    env_rate_steps: int = 0
    time_clock: str = "wall"

    @property
    def comparison(self) -> str:
        """``"time"`` for an equal-training-time run, ``"steps"`` for an equal-env-steps one."""
        return "steps" if self.time_budget is None else "time"

    def identity(self) -> dict[str, Any]:
        """Everything that decides the run's outcome (not the suite's name, not verbosity)."""
        out = {"agent": self.agent, "agent_kwargs": self.agent_kwargs, "env": self.env.to_json(),
               "seed": self.seed, "budget": self.budget, "protocol": self.effective_protocol.to_json()}
        if self.time_budget is not None:  # absent otherwise, so the ids of step-budget runs never change
            out["time_budget"] = self.time_budget
            if self.time_clock != "wall":  # likewise: wall-clock equal-time runs keep the ids they had
                out["time_clock"] = self.time_clock
        if self.env_rate_steps:  # likewise: only runs that measure the env's own rate record it
            out["env_rate_steps"] = self.env_rate_steps
        settings = _agent_settings(self.agent, self.env)
        if settings is not None:  # tracerl agents: their defaults, so a change of defaults makes new runs
            out["agent_settings"] = settings
        return out

    @property
    def run_id(self) -> str:
        """``<agent>.<env label>[.t<seconds>s | .t<seconds>cpu].s<seed>.<hash>``: stable across processes, sessions
        and machines."""
        digest = hashlib.sha256(json.dumps(self.identity(), sort_keys=True, default=str).encode()).hexdigest()
        unit = "s" if self.time_clock == "wall" else self.time_clock
        timed = "" if self.time_budget is None else f".t{self.time_budget:g}{unit}"
        return f"{self.agent}.{self.env.label}{timed}.s{self.seed}.{digest[:10]}"

    @property
    def effective_protocol(self) -> EvalProtocol:
        """The protocol of this run: an equal-steps run evaluates every ``eval_every`` env steps (never by
        time); an equal-time run every ``protocol.every_seconds`` of training when that is set (else by steps)."""
        if self.time_budget is None:
            return dataclasses.replace(self.protocol, every=self.eval_every, every_seconds=0.0)
        if self.protocol.every_seconds > 0:
            return dataclasses.replace(self.protocol, every=0)
        return dataclasses.replace(self.protocol, every=self.eval_every)


@dataclass(frozen=True)
class Suite:
    """A benchmark suite.

    Attributes:
        name: the suite's name (its results go to ``<out>/<name>`` by default).
        description: one line for ``tracerl bench --list``.
        agents: the agents, by registered name.
        envs: the tasks.
        seeds: training seeds (each run also evaluates on seeds derived from it, held out).
        budget: env steps per run (see the module docstring for per-env and per-agent budgets).
        protocol: the evaluation protocol.
        env_eval_every: per-env evaluation periods, by ``EnvSpec.key()`` (else ``protocol.every``).
        sweep: an env keyword (e.g. ``"delay"``): the report gives the longest value each agent solves.
        escalate: with ``sweep``, run the swept values in increasing order and stop an agent at the first
            value whose IQM final success over seeds is below the threshold (or where a run failed): its
            longer values are not run (see :func:`escalation_groups`).
        time_budget: seconds of training (evaluation excluded) for the equal-time comparison: every agent
            runs once more per env and seed, stopped when its training wall-clock reaches this (None: no
            equal-time comparison).
        time_step_cap: the env-step budget of an equal-time run (a cap it should not reach).
        time_clock: how an equal-time run counts its training seconds: ``"wall"`` (wall-clock) or ``"cpu"``
            (the run process's own CPU time: on a machine shared with other jobs, the compute each agent would
            have had on a free core; see :func:`~tracerl.bench.protocol.training_clock`).
        compare_steps: run the equal-env-steps comparison (False: equal time only).
        env_rate_steps: > 0: every run also measures its env's own random-action stepping rate on this many env
            steps (the same vector env class and number of sub-envs as the agent's, right before and after
            training, in the same process), and the report sets each agent's training rate beside it.
    """

    name: str
    description: str
    agents: tuple[AgentEntry, ...]
    envs: tuple[EnvSpec, ...]
    seeds: tuple[int, ...]
    budget: int
    protocol: EvalProtocol = EvalProtocol()
    env_eval_every: dict[str, int] = field(default_factory=dict)
    sweep: str | None = None
    escalate: bool = False
    time_budget: float | None = None
    time_step_cap: int = 10_000_000
    time_clock: str = "wall"
    compare_steps: bool = True
    env_rate_steps: int = 0

    def validate(self) -> None:
        """Check every name, budget and seed before anything runs (:class:`ConfigError` names the field)."""
        where = f"suite {self.name!r}"
        if not self.agents:
            raise ConfigError(f"{where}: agents is empty; valid agents: {', '.join(available_agents())}")
        for entry in self.agents:
            get_agent(entry.name, where=f"{where}: agents")
            if entry.budget is not None:
                check_budget(entry.budget, f"{where}: agent {entry.name!r} budget")
            if not isinstance(entry.kwargs, dict):
                raise ConfigError(f"{where}: agent {entry.name!r} kwargs = {entry.kwargs!r} is invalid: must be a table")
        if not self.envs:
            raise ConfigError(f"{where}: envs is empty")
        for env in self.envs:
            check_env_id(env.id, where=f"{where}: envs")
            if env.budget is not None:
                check_budget(env.budget, f"{where}: env {env.label} budget")
        check_seeds(self.seeds, f"{where}: seeds")
        check_budget(self.budget, f"{where}: budget")
        self.protocol.validate(where=f"{where}: protocol")
        if self.escalate and not self.sweep:
            raise ConfigError(f"{where}: escalate = true needs sweep (the env keyword to escalate over)")
        if self.time_budget is not None:
            check_time_budget(self.time_budget, f"{where}: time_budget")
        check_budget(self.time_step_cap, f"{where}: time_step_cap")
        if self.time_clock not in TIME_CLOCKS:
            raise ConfigError(f"{where}: time_clock = {self.time_clock!r} is invalid: one of {', '.join(TIME_CLOCKS)}")
        if isinstance(self.env_rate_steps, bool) or not isinstance(self.env_rate_steps, int) or self.env_rate_steps < 0:
            raise ConfigError(f"{where}: env_rate_steps = {self.env_rate_steps!r} is invalid: must be an integer >= 0 "
                              "(0: do not measure the env's own stepping rate)")
        if not self.compare_steps and self.time_budget is None:
            raise ConfigError(f"{where}: compare_steps = false needs time_budget (there would be no runs)")
        for key, every in self.env_eval_every.items():
            if isinstance(every, bool) or not isinstance(every, int) or every < 0:
                raise ConfigError(f"{where}: eval_every = {every!r} of env {key} is invalid: must be an integer >= 0")

    @property
    def comparisons(self) -> tuple[str, ...]:
        """``"steps"`` (equal env steps) and / or ``"time"`` (equal training time), in report order."""
        return (("steps",) if self.compare_steps else ()) + (("time",) if self.time_budget is not None else ())

    def runs(self) -> list[RunSpec]:
        """Every run, env by env, agent by agent, seed by seed: the equal-steps runs, then the equal-time ones."""
        out = []
        for env in self.envs:
            every = self.env_eval_every.get(env.key(), self.protocol.every)
            for entry in self.agents:
                budget = env.budget if env.budget is not None else self.budget
                if entry.budget is not None:
                    budget = min(budget, entry.budget)
                if self.compare_steps:
                    for seed in self.seeds:
                        out.append(RunSpec(self.name, entry.name, dict(entry.kwargs), env, seed, budget,
                                           self.protocol, every, env_rate_steps=self.env_rate_steps))
                if self.time_budget is not None:
                    for seed in self.seeds:
                        out.append(RunSpec(self.name, entry.name, dict(entry.kwargs), env, seed, self.time_step_cap,
                                           self.protocol, every, time_budget=float(self.time_budget),
                                           env_rate_steps=self.env_rate_steps, time_clock=self.time_clock))
        return out

    def restrict(
        self,
        agents: Iterable[str] | None = None,
        seeds: Iterable[int] | None = None,
        budget: int | None = None,
        sweep_values: Iterable[Any] | None = None,
        protocol: dict[str, Any] | None = None,
        escalate: bool | None = None,
        envs: Iterable[str] | None = None,
        comparisons: Iterable[str] | None = None,
        time_budget: float | None = None,
        time_clock: str | None = None,
    ) -> "Suite":
        """A copy with other agents (names, each validated), seeds, budget (replacing every env and agent
        budget), only the envs whose ``sweep`` keyword is in ``sweep_values``, protocol fields, escalation
        switched on or off, only the envs matching ``envs`` (each a case-insensitive part of an env's id or
        label, e.g. ``CountRecall``; a pattern that starts a part of some env's name selects only those envs, so
        ``PositionOnlyCartPole`` is not also ``NoisyPositionOnlyCartPole``), only some ``comparisons`` (``steps`` /
        ``time``), another time budget, or another clock for the equal-time runs (``wall`` / ``cpu``)."""
        suite = self
        if time_clock is not None:
            if time_clock not in TIME_CLOCKS:
                raise ConfigError(f"--time-clock {time_clock!r} is invalid: one of {', '.join(TIME_CLOCKS)}")
            suite = dataclasses.replace(suite, time_clock=time_clock)
        if time_budget is not None:
            check_time_budget(time_budget, "--time-budget")
            suite = dataclasses.replace(suite, time_budget=float(time_budget))
        if envs is not None:
            wanted = [w for w in envs]
            kept = []
            for pattern in wanted:
                match = _matching_envs(suite.envs, pattern)
                if not match:
                    raise ConfigError(f"--envs {pattern!r}: no env of suite {suite.name!r} matches it; valid: "
                                      f"{', '.join(e.label for e in suite.envs)}")
                kept += [e for e in match if e not in kept]
            suite = dataclasses.replace(suite, envs=tuple(e for e in suite.envs if e in kept))
        if comparisons is not None:
            wanted_c = set(comparisons)
            bad = sorted(wanted_c - {"steps", "time"})
            if bad or not wanted_c:
                raise ConfigError(f"--comparison {','.join(sorted(wanted_c))!r} is invalid: steps, time or both")
            if "time" in wanted_c and suite.time_budget is None:
                raise ConfigError(f"--comparison time: suite {suite.name!r} has no time budget (give --time-budget)")
            suite = dataclasses.replace(suite, compare_steps="steps" in wanted_c,
                                        time_budget=suite.time_budget if "time" in wanted_c else None)
        if escalate is not None:
            if escalate and not suite.sweep:
                raise ConfigError(f"--escalate: suite {suite.name!r} has no sweep keyword to escalate over")
            suite = dataclasses.replace(suite, escalate=escalate)
        if agents is not None:
            names = list(agents)
            for name in names:
                get_agent(name, where="--agents")
            known = {e.name: e for e in suite.agents}
            entries = tuple(known.get(n, AgentEntry(n)) for n in names)
            suite = dataclasses.replace(suite, agents=entries)
        if seeds is not None:
            seeds = tuple(seeds)
            check_seeds(seeds, "--seeds")
            suite = dataclasses.replace(suite, seeds=seeds)
        if budget is not None:
            check_budget(budget, "--budget")
            suite = dataclasses.replace(
                suite, budget=budget,
                envs=tuple(dataclasses.replace(e, budget=None) for e in suite.envs),
                agents=tuple(dataclasses.replace(a, budget=None) for a in suite.agents))
        if sweep_values is not None:
            key = suite.sweep or "delay"
            wanted = list(sweep_values)
            envs = tuple(e for e in suite.envs if e.kwargs.get(key) in wanted)
            if not envs:
                have = sorted({e.kwargs.get(key) for e in suite.envs if key in e.kwargs})
                raise ConfigError(f"--delays {','.join(map(str, wanted))}: no env of suite {suite.name!r} has "
                                  f"{key} in it; valid: {', '.join(map(str, have)) or 'none'}")
            suite = dataclasses.replace(suite, envs=envs)
        if protocol:
            try:
                suite = dataclasses.replace(suite, protocol=dataclasses.replace(suite.protocol, **protocol))
            except TypeError as exc:
                raise ConfigError(f"protocol: {exc}") from exc
            if "every" in protocol:
                suite = dataclasses.replace(suite, env_eval_every={})
        return suite

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form (written beside the results)."""
        return {"name": self.name, "description": self.description,
                "agents": [dataclasses.asdict(a) for a in self.agents],
                "envs": [{**e.to_json(), "budget": e.budget} for e in self.envs],
                "seeds": list(self.seeds), "budget": self.budget, "protocol": self.protocol.to_json(),
                "env_eval_every": dict(self.env_eval_every), "sweep": self.sweep, "escalate": self.escalate,
                "time_budget": self.time_budget, "time_step_cap": self.time_step_cap, "time_clock": self.time_clock,
                "compare_steps": self.compare_steps, "env_rate_steps": self.env_rate_steps}


def _matching_envs(envs: Iterable[EnvSpec], pattern: str) -> list[EnvSpec]:
    """The envs ``pattern`` (any case) selects: those with a part of the id or label (split at ``/``, ``-``, ``(``)
    that starts with it, else (none such) those whose id or label contains it anywhere."""
    p = pattern.lower()
    envs = list(envs)

    def parts(e: EnvSpec) -> list[str]:
        return [x for text in (e.id.lower(), e.label.lower()) for x in re.split(r"[/\-(]", text)]

    starts = [e for e in envs if any(x.startswith(p) for x in parts(e)) or p in (e.id.lower(), e.label.lower())]
    return starts or [e for e in envs if p in e.id.lower() or p in e.label.lower()]


def sweep_group_label(env: EnvSpec, key: str) -> str:
    """An env's sweep group: its id and every keyword except the swept one, e.g. ``CueDelay-v0 difficulty=1``."""
    rest = {k: v for k, v in env.kwargs.items() if k != key}
    return env.id.split("/")[-1] + (" " + ",".join(f"{k}={v}" for k, v in sorted(rest.items())) if rest else "")


def escalation_groups(runs: Iterable[RunSpec], key: str) -> dict[tuple[str, str], list[list[RunSpec]]]:
    """Runs by (agent, sweep group), as a list of levels in increasing swept value, each level the runs
    (one per seed) at that value. Runs whose env lacks the swept keyword form a one-level group each."""
    by_value: dict[tuple[str, str], dict[Any, list[RunSpec]]] = {}
    for run in runs:
        value = run.env.kwargs.get(key)
        group = (run.agent, sweep_group_label(run.env, key) if value is not None else run.env.label)
        by_value.setdefault(group, {}).setdefault(value, []).append(run)
    return {g: [levels[v] for v in sorted(levels, key=lambda v: (v is None, v))] for g, levels in by_value.items()}


# -- validation helpers ----------------------------------------------------------------------------
def check_budget(value: Any, where: str) -> None:
    """A budget is an integer number of env steps >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where} = {value!r} is invalid: must be an integer number of env steps >= 1")


def check_time_budget(value: Any, where: str) -> None:
    """A time budget is a finite number of seconds > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise ConfigError(f"{where} = {value!r} is invalid: must be a number of seconds > 0")


def check_seeds(value: Any, where: str) -> None:
    """Seeds are a non-empty list of distinct integers >= 0."""
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"{where} = {value!r} is invalid: must be a non-empty list of integers >= 0")
    for seed in value:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"{where}: seed {seed!r} is invalid: seeds are integers >= 0")
    if len(set(value)) != len(value):
        raise ConfigError(f"{where} = {list(value)!r} is invalid: seeds repeat")


# -- built-in suites -------------------------------------------------------------------------------
def _tracerl_agents() -> tuple[AgentEntry, ...]:
    from ..memory import available_memories
    from .agents import TRACERL_PREFIX
    return tuple(AgentEntry(TRACERL_PREFIX + core) for core in available_memories())  # one PPO agent per core


QUICK_TIME_BUDGET = 15.0
"""Seconds of training every agent gets in the quick suite."""


def popgym_available() -> bool:
    """Whether the ``popgym`` package can be imported (without importing it)."""
    from importlib.util import find_spec

    return find_spec("popgym") is not None


def quick_suite() -> Suite:
    """The default suite: every agent gets the same 15 s of training, on a delayed-cue task that budget
    separates them on and on one POPGym task.

    CueDelay delay 16 with random distractors (difficulty 1): tracerl's GRU solves it in a few seconds,
    RecurrentPPO needs 20k-40k env steps (minutes at its ~300 env-steps/s), memoryless PPO cannot rise above
    chance. POPGym RepeatPreviousEasy (when popgym is installed: ``pip install 'tracerl[popgym]'``), scored by
    its episode return in [-1, 1]. 3 seeds; held-out evaluation every 2.5 s of training on 100 episodes; a run
    on CueDelay stops at 95 % held-out success (confirmed on 100 more episodes; an env scored by return, as
    POPGym's, has no success threshold and trains its full time) or at 15 s of training (SB3: at the next
    vector step or optimizer step; tracerl: at the end of the update in progress), then is scored on 100
    held-out episodes in both modes. The report opens with one sentence per env saying who reached what
    within the 15 s. About 5 minutes on 2 cores with one worker.
    """
    envs = (cue_delay(16, 1),) + ((popgym_env("RepeatPrevious"),) if popgym_available() else ())
    names = "CueDelay delay 16 (distractors)" + (" and POPGym RepeatPreviousEasy" if len(envs) > 1 else
                                                  " (POPGym RepeatPrevious skipped: popgym is not installed)")
    return Suite(
        name="quick",
        description=f"tracerl-gru vs sb3-recurrentppo vs sb3-ppo, {QUICK_TIME_BUDGET:g} s of training each, "
                    f"{names}, 3 seeds",
        agents=(AgentEntry("tracerl-gru"), AgentEntry("sb3-recurrentppo"), AgentEntry("sb3-ppo")),
        envs=envs,
        seeds=(0, 1, 2),
        budget=32_768,
        protocol=EvalProtocol(episodes=100, every=0, every_seconds=2.5, final_episodes=100, stop_at_threshold=True),
        time_budget=QUICK_TIME_BUDGET,
        compare_steps=False,
    )


POPGYM_BUDGET = 200_000
"""Env steps per run of the popgym suite's equal-steps comparison."""

POPGYM_TIME_BUDGET = 120.0
"""Seconds of training per run of the popgym suite's equal-time comparison."""


def popgym_suite() -> Suite:
    """Every POPGym env that plain ``pip install popgym`` provides (:data:`~tracerl.bench.envs.POPGYM_EASY`,
    14 envs; the Labyrinth ones need mazelib), Easy difficulty, through the real package.

    Agents: tracerl's default agent (``tracerl-gru``; ``--agents`` adds any other core), RecurrentPPO and
    PPO. Two comparisons: equal env steps (200k per run, evaluated every 20k steps on 50 episodes) and equal
    training time (120 s per run, evaluated every 20 s). Scores are the final mean episode return on 100
    held-out episodes with greedy actions (POPGym's returns lie in [-1, 1]); the report's table also gives the
    return with sampled actions, which POPGym's own figures (returns of training episodes) correspond to and which
    is far higher on the games with many actions (Battleship, Concentration), where a greedy policy repeats a move.
    RecurrentPPO trains at ~150 env-steps/s, so its 200k-step runs take ~20 minutes each: finished runs are
    kept, so complete the suite in parts (e.g. ``--agents sb3-recurrentppo --envs CountRecall,RepeatPrevious
    --seeds 0``, ``--comparison time``) and write the report of everything finished so far with ``--report-only``.
    """
    return Suite(
        name="popgym",
        description=f"POPGym Easy ({len(POPGYM_EASY)} envs): tracerl-gru vs sb3-recurrentppo vs sb3-ppo at equal env "
                    f"steps ({POPGYM_BUDGET:,}) and equal training time ({POPGYM_TIME_BUDGET:g} s), 3 seeds",
        agents=(AgentEntry("tracerl-gru"), AgentEntry("sb3-recurrentppo"), AgentEntry("sb3-ppo")),
        envs=tuple(popgym_env(name) for name in POPGYM_EASY),
        seeds=(0, 1, 2),
        budget=POPGYM_BUDGET,
        protocol=EvalProtocol(episodes=50, every=20_000, every_seconds=20.0, final_episodes=100,
                              stop_at_threshold=False, confirm=False),
        time_budget=POPGYM_TIME_BUDGET,
    )


MEMORY_LENGTH_DELAYS: tuple[int, ...] = tuple(2 ** k for k in range(2, 13))
"""4, 8, ..., 4096."""


def memory_length_budget(delay: int) -> int:
    """Env steps for a delay: about 500 episodes' worth, at least 100k and at most 2M."""
    return int(min(2_000_000, max(100_000, 500 * delay)))


def memory_length_suite() -> Suite:
    """The longest CueDelay delay each agent solves (>= 95 % held-out success) within its budget.

    Delays 4 to 4096 (powers of two), difficulty 0 (blank) and 1 (distractors), every agent, 3 seeds.
    Budget :func:`memory_length_budget` per delay (RecurrentPPO capped at 100k, the budget every agent gets up
    to delay 128: it trains at ~300 env-steps/s); evaluation every ~1/10 of the budget, stopping at the
    threshold. The suite escalates: an agent stops at the first delay (per difficulty) it does not solve.
    About 1.5 hours with ``--workers 2`` on 2 cores; choose with ``--agents``, ``--delays`` and ``--seeds``.
    """
    envs = tuple(cue_delay(d, diff, memory_length_budget(d)) for diff in (0, 1) for d in MEMORY_LENGTH_DELAYS)
    every = {e.key(): max(4096, (memory_length_budget(e.kwargs["delay"]) // 10) // 4096 * 4096) for e in envs}
    agents = tuple(AgentEntry(n, budget=100_000 if n == "sb3-recurrentppo" else None)
                   for n in SB3_AGENTS) + _tracerl_agents()
    return Suite(
        name="memory-length",
        description="longest CueDelay delay solved (>= 95 %), delays 4-4096, difficulties 0 and 1, every agent",
        agents=agents, envs=envs, seeds=(0, 1, 2), budget=100_000,
        protocol=EvalProtocol(episodes=100, every=8192, final_episodes=200, stop_at_threshold=True),
        env_eval_every=every, sweep="delay", escalate=True,
    )


THROUGHPUT_ENV_RATE_STEPS = 16_384
"""Env steps of each random-action stepping measurement of the throughput suite (before and after training)."""


def throughput_suite() -> Suite:
    """Training env-steps/s of every agent at its own defaults (CueDelay delay 16 with distractors, and POPGym
    RepeatPreviousEasy when popgym is installed), 32,768 env steps, no periodic evaluation, one deterministic final
    evaluation. Every run also measures its env's own random-action stepping rate (the same vector env class and
    number of sub-envs as the agent's, in the same process, right before and after training), and the report sets
    the training rate beside it and beside RecurrentPPO's."""
    agents = tuple(AgentEntry(n) for n in SB3_AGENTS) + _tracerl_agents()
    envs = (cue_delay(16, 1),) + ((popgym_env("RepeatPrevious"),) if popgym_available() else ())
    names = "CueDelay delay 16 (distractors)" + (" and POPGym RepeatPreviousEasy" if len(envs) > 1 else "")
    return Suite(
        name="throughput",
        description=f"training env-steps/s of every agent against the env's own stepping rate, {names}, 32k steps",
        agents=agents, envs=envs, seeds=(0,), budget=32_768,
        protocol=EvalProtocol(every=0, final_episodes=100, modes=("deterministic",)),
        env_rate_steps=THROUGHPUT_ENV_RATE_STEPS,
    )


SUITES: dict[str, Callable[[], Suite]] = {
    "quick": quick_suite,
    "popgym": popgym_suite,
    "memory-length": memory_length_suite,
    "throughput": throughput_suite,
}
"""Built-in suites by name (factories, so agent lists follow the memory registry)."""

DEFAULT_SUITE = "quick"


def load_suite(name_or_path: str) -> Suite:
    """A built-in suite by name, or a suite from a ``.toml`` file (validated)."""
    if name_or_path in SUITES:
        suite = SUITES[name_or_path]()
    elif name_or_path.endswith(".toml") or Path(name_or_path).is_file():
        suite = suite_from_toml(Path(name_or_path))
    else:
        raise ConfigError(f"unknown suite {name_or_path!r}; valid: {', '.join(SUITES)} (or a path to a .toml file)")
    suite.validate()
    return suite


# -- TOML ------------------------------------------------------------------------------------------
_TOP_KEYS = {"name", "description", "agents", "envs", "seeds", "budget", "protocol", "sweep", "escalate",
             "time_budget", "time_step_cap", "time_clock", "compare_steps", "env_rate_steps"}
_AGENT_KEYS = {"name", "kwargs", "budget"}
_ENV_KEYS = {"id", "kwargs", "budget", "eval_every", "score"}


def suite_from_toml(path: Path) -> Suite:
    """Parse a suite file; a missing file, bad TOML, unknown key or wrongly typed value raises
    :class:`ConfigError` naming the file, the key and the value."""
    import tomllib

    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"suite file {path}: not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"suite file {path}: invalid TOML: {exc}") from exc
    return suite_from_dict(data, where=f"suite file {path}", default_name=path.stem)


def _expect(cond: bool, where: str, key: str, value: Any, rule: str) -> None:
    if not cond:
        raise ConfigError(f"{where}: {key} = {value!r} is invalid: {rule}")


def _unknown(keys: Iterable[str], valid: set[str], where: str) -> None:
    extra = sorted(set(keys) - valid)
    if extra:
        raise ConfigError(f"{where}: unknown key {extra[0]!r}; valid keys: {', '.join(sorted(valid))}")


def suite_from_dict(data: dict[str, Any], where: str = "suite", default_name: str = "custom") -> Suite:
    """Build a :class:`Suite` from the parsed TOML table ``data`` (see the module docstring)."""
    _unknown(data, _TOP_KEYS, where)
    for key in ("agents", "envs", "seeds", "budget"):
        if key not in data:
            raise ConfigError(f"{where}: missing key {key!r}")
    name = data.get("name", default_name)
    _expect(isinstance(name, str) and bool(name), where, "name", name, "must be a non-empty string")
    description = data.get("description", "")
    _expect(isinstance(description, str), where, "description", description, "must be a string")

    raw_agents = data["agents"]
    _expect(isinstance(raw_agents, list) and bool(raw_agents), where, "agents", raw_agents,
            "must be a non-empty list of names or tables")
    agents = []
    for i, item in enumerate(raw_agents):
        at = f"{where}: agents[{i}]"
        if isinstance(item, str):
            item = {"name": item}
        _expect(isinstance(item, dict), where, f"agents[{i}]", item, "must be a name or a table")
        _unknown(item, _AGENT_KEYS, at)
        _expect(isinstance(item.get("name"), str), at, "name", item.get("name"), "must be an agent name")
        kwargs = item.get("kwargs", {})
        _expect(isinstance(kwargs, dict), at, "kwargs", kwargs, "must be a table")
        budget = item.get("budget")
        if budget is not None:
            check_budget(budget, f"{at}: budget")
        get_agent(item["name"], where=at)
        agents.append(AgentEntry(item["name"], dict(kwargs), budget))

    raw_envs = data["envs"]
    _expect(isinstance(raw_envs, list) and bool(raw_envs), where, "envs", raw_envs, "must be a non-empty list of tables")
    envs, env_every = [], {}
    for i, item in enumerate(raw_envs):
        at = f"{where}: envs[{i}]"
        _expect(isinstance(item, dict), where, f"envs[{i}]", item, "must be a table with id (and kwargs)")
        _unknown(item, _ENV_KEYS, at)
        _expect(isinstance(item.get("id"), str), at, "id", item.get("id"), "must be a Gymnasium env id")
        check_env_id(item["id"], where=at)
        kwargs = item.get("kwargs", {})
        _expect(isinstance(kwargs, dict), at, "kwargs", kwargs, "must be a table")
        budget = item.get("budget")
        if budget is not None:
            check_budget(budget, f"{at}: budget")
        score = item.get("score", "return" if item["id"].startswith("popgym-") else "success")
        _expect(score in SCORES, at, "score", score, f"must be one of {', '.join(SCORES)}")
        env = EnvSpec(item["id"], dict(kwargs), budget, score=score)
        if "eval_every" in item:
            every = item["eval_every"]
            _expect(isinstance(every, int) and not isinstance(every, bool) and every >= 0, at, "eval_every", every,
                    "must be an integer >= 0")
            env_every[env.key()] = every
        envs.append(env)

    check_seeds(data["seeds"], f"{where}: seeds")
    check_budget(data["budget"], f"{where}: budget")
    raw_protocol = data.get("protocol", {})
    _expect(isinstance(raw_protocol, dict), where, "protocol", raw_protocol, "must be a table")
    valid_protocol = {f.name for f in dataclasses.fields(EvalProtocol)}
    _unknown(raw_protocol, valid_protocol, f"{where}: protocol")
    if "modes" in raw_protocol:
        modes = raw_protocol["modes"]
        _expect(isinstance(modes, list), f"{where}: protocol", "modes", modes, "must be a list")
        raw_protocol = {**raw_protocol, "modes": tuple(modes)}
    protocol = EvalProtocol(**raw_protocol)
    protocol.validate(where=f"{where}: protocol")
    sweep = data.get("sweep")
    _expect(sweep is None or isinstance(sweep, str), where, "sweep", sweep, "must be an env keyword name")
    escalate = data.get("escalate", False)
    _expect(isinstance(escalate, bool), where, "escalate", escalate, "must be true or false")
    _expect(not escalate or sweep is not None, where, "escalate", escalate, "needs sweep (the keyword to escalate over)")
    time_budget = data.get("time_budget")
    if time_budget is not None:
        check_time_budget(time_budget, f"{where}: time_budget")
    cap = data.get("time_step_cap", 10_000_000)
    check_budget(cap, f"{where}: time_step_cap")
    time_clock = data.get("time_clock", "wall")
    _expect(time_clock in TIME_CLOCKS, where, "time_clock", time_clock, f"one of {', '.join(TIME_CLOCKS)}")
    compare_steps = data.get("compare_steps", True)
    _expect(isinstance(compare_steps, bool), where, "compare_steps", compare_steps, "must be true or false")
    _expect(compare_steps or time_budget is not None, where, "compare_steps", compare_steps,
            "false needs time_budget (there would be no runs)")
    env_rate_steps = data.get("env_rate_steps", 0)
    _expect(not isinstance(env_rate_steps, bool) and isinstance(env_rate_steps, int) and env_rate_steps >= 0, where,
            "env_rate_steps", env_rate_steps, "must be an integer >= 0 (0: do not measure the env's own rate)")
    return Suite(name=name, description=description, agents=tuple(agents), envs=tuple(envs),
                 seeds=tuple(data["seeds"]), budget=data["budget"], protocol=protocol,
                 env_eval_every=env_every, sweep=sweep, escalate=escalate,
                 time_budget=None if time_budget is None else float(time_budget), time_step_cap=cap,
                 time_clock=time_clock, compare_steps=compare_steps, env_rate_steps=env_rate_steps)
