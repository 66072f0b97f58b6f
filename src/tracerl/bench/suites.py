"""Suites: agents x envs x seeds x budget x evaluation protocol, built in (Python) or from a TOML file.

A TOML suite::

    name = "mine"
    description = "GRU against the baselines at delay 8"
    seeds = [0, 1]
    budget = 20000                       # env steps per run
    agents = ["sb3-ppo", "tracerl-gru"]  # or [[agents]] tables: name, budget (a cap), kwargs
    sweep = "delay"                      # optional: report the longest delay each agent solves
    escalate = true                      # optional: stop an agent at its first unsolved delay

    [[envs]]
    id = "tracerl/CueDelay-v0"
    kwargs = { delay = 8, difficulty = 1 }
    budget = 30000                       # optional, replaces the suite's budget on this env
    eval_every = 4096                    # optional, replaces protocol.every on this env

    [protocol]                           # fields of EvalProtocol
    every = 4096
    stop_at_threshold = true

A run's budget is the env's budget (else the suite's), capped by the agent's ``budget`` when it has one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import ConfigError
from .agents import SB3_AGENTS, available_agents, get_agent
from .envs import EnvSpec, check_env_id, cue_delay
from .protocol import EvalProtocol


@dataclass(frozen=True)
class AgentEntry:
    """An agent of a suite: a registered name, keyword arguments for its constructor, a budget cap."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    budget: int | None = None


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

    def identity(self) -> dict[str, Any]:
        """Everything that decides the run's outcome (not the suite's name, not verbosity)."""
        return {"agent": self.agent, "agent_kwargs": self.agent_kwargs, "env": self.env.to_json(),
                "seed": self.seed, "budget": self.budget,
                "protocol": {**self.protocol.to_json(), "every": self.eval_every}}

    @property
    def run_id(self) -> str:
        """``<agent>.<env label>.s<seed>.<hash>``: stable across processes, sessions and machines."""
        digest = hashlib.sha256(json.dumps(self.identity(), sort_keys=True, default=str).encode()).hexdigest()
        return f"{self.agent}.{self.env.label}.s{self.seed}.{digest[:10]}"

    @property
    def effective_protocol(self) -> EvalProtocol:
        """The protocol with this env's evaluation period."""
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
        for key, every in self.env_eval_every.items():
            if isinstance(every, bool) or not isinstance(every, int) or every < 0:
                raise ConfigError(f"{where}: eval_every = {every!r} of env {key} is invalid: must be an integer >= 0")

    def runs(self) -> list[RunSpec]:
        """Every run, env by env, agent by agent, seed by seed."""
        out = []
        for env in self.envs:
            every = self.env_eval_every.get(env.key(), self.protocol.every)
            for entry in self.agents:
                budget = env.budget if env.budget is not None else self.budget
                if entry.budget is not None:
                    budget = min(budget, entry.budget)
                for seed in self.seeds:
                    out.append(RunSpec(self.name, entry.name, dict(entry.kwargs), env, seed, budget,
                                       self.protocol, every))
        return out

    def restrict(
        self,
        agents: Iterable[str] | None = None,
        seeds: Iterable[int] | None = None,
        budget: int | None = None,
        sweep_values: Iterable[Any] | None = None,
        protocol: dict[str, Any] | None = None,
        escalate: bool | None = None,
    ) -> "Suite":
        """A copy with other agents (names, each validated), seeds, budget (replacing every env and agent
        budget), only the envs whose ``sweep`` keyword is in ``sweep_values``, protocol fields, or escalation
        switched on or off."""
        suite = self
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
                "env_eval_every": dict(self.env_eval_every), "sweep": self.sweep, "escalate": self.escalate}


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
    from .agents import TRACERL_PREFIX
    return tuple(AgentEntry(n) for n in available_agents() if n.startswith(TRACERL_PREFIX))


def quick_suite() -> Suite:
    """The default suite: a memory agent against memoryless PPO and RecurrentPPO on short delays.

    CueDelay with random distractors (difficulty 1), delays 4 and 8; 3 seeds; every run stops at 95 %
    held-out success (checked every 4,096 env steps on 100 episodes, confirmed on 200 more) or at 32,768
    env steps, then is scored on 200 held-out episodes in both modes. Memoryless SB3 PPO gets one rollout
    at its defaults (8 x 2,048 = 16,384 steps): it cannot rise above chance at any budget. A few minutes
    on 2 cores with one worker; RecurrentPPO (~300 env-steps/s) takes most of it. Delay 16, where
    RecurrentPPO needs 20k-40k steps (a few minutes per seed), is in ``memory-length``.
    """
    return Suite(
        name="quick",
        description="tracerl-gru vs sb3-ppo vs sb3-recurrentppo, CueDelay delays 4 and 8 (distractors), 3 seeds",
        agents=(AgentEntry("tracerl-gru"), AgentEntry("sb3-recurrentppo"), AgentEntry("sb3-ppo", budget=16_384)),
        envs=(cue_delay(4, 1), cue_delay(8, 1)),
        seeds=(0, 1, 2),
        budget=32_768,
        protocol=EvalProtocol(episodes=100, every=4096, final_episodes=200, stop_at_threshold=True),
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


def throughput_suite() -> Suite:
    """Training env-steps/s of every agent at its own defaults on one config (CueDelay delay 16,
    distractors), 32,768 env steps, no periodic evaluation, one deterministic final evaluation."""
    agents = tuple(AgentEntry(n) for n in SB3_AGENTS) + _tracerl_agents()
    return Suite(
        name="throughput",
        description="training env-steps/s of every agent on CueDelay delay 16 (distractors), 32k steps",
        agents=agents, envs=(cue_delay(16, 1),), seeds=(0,), budget=32_768,
        protocol=EvalProtocol(every=0, final_episodes=100, modes=("deterministic",)),
    )


SUITES: dict[str, Callable[[], Suite]] = {
    "quick": quick_suite,
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
_TOP_KEYS = {"name", "description", "agents", "envs", "seeds", "budget", "protocol", "sweep", "escalate"}
_AGENT_KEYS = {"name", "kwargs", "budget"}
_ENV_KEYS = {"id", "kwargs", "budget", "eval_every"}


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
        env = EnvSpec(item["id"], dict(kwargs), budget)
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
    return Suite(name=name, description=description, agents=tuple(agents), envs=tuple(envs),
                 seeds=tuple(data["seeds"]), budget=data["budget"], protocol=protocol,
                 env_eval_every=env_every, sweep=sweep, escalate=escalate)
