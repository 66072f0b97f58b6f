"""``AgentPerformanceBenchmark``: seed 001's "benchmark this agent against a regular PPO and a RecurrentPPO".

    bench = AgentPerformanceBenchmark(
        dict(delay=4, n_train_episodes=2000, total_timesteps=10_000, difficulty=0, mode_name="EASY",
             verbose=0, eval_base=True),
        memory_agent_config=dict(memory="gru", learning_rate=3e-3),
    )
    rows = bench.run()   # prints the table and returns one dict per agent

It trains SB3 ``PPO("MlpPolicy")`` and sb3-contrib ``RecurrentPPO("MlpLstmPolicy")`` (when ``eval_base``)
and :class:`tracerl.TraceRL` on ``CueDelay(delay, difficulty)``, evaluates each on held-out episodes with
its memory carried by ``predict(obs, state, episode_start)``, and reports the seed's columns plus the
success rate and training env-steps/s.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import ConfigError
from .agents import TraceRLTrainer, Trainer, make_recurrent_ppo, make_sb3_ppo, SB3Trainer
from .envs import EnvSpec, cue_delay
from .protocol import EvalProtocol
from .training import RunMetrics, train_and_evaluate

TABLE_COLUMNS: tuple[str, ...] = ("Agent", "Delay", "Mode", "Mean Ep Rew", "Std Ep Rew", "Duration (s)")
"""The seed's table columns."""
EXTRA_COLUMNS: tuple[str, ...] = ("Success Rate", "Env-steps/s", "Train Steps")
"""Columns printed beside them (``Train Steps``: the env steps each agent actually trained, equal to the budget
for SB3, rounded up to a whole 1,024-step rollout for tracerl's defaults)."""

EXPERIMENT_KEYS: dict[str, str] = {
    "delay": "CueDelay delay (actions per episode), required",
    "total_timesteps": "training env steps of every agent",
    "n_train_episodes": "used only without total_timesteps: budget = n_train_episodes * delay",
    "difficulty": "0: blank observations after the cue; 1: random +-1 distractors (default 0)",
    "mode_name": "label of the Mode column (default EASY for difficulty 0, HARD for 1)",
    "verbose": "0 silent; 1 a header and a progress bar per agent (default 0)",
    "eval_base": "also train and evaluate SB3 PPO and RecurrentPPO (default True)",
    "seed": "training seed of every agent (default 0); evaluation episodes use held-out seeds",
    "n_eval_episodes": "held-out evaluation episodes per agent (default 100)",
}
"""Keys of ``experiment``: the seed's seven and two optional ones."""

SEED_001_EXPERIMENTS: tuple[dict[str, Any], ...] = (
    dict(delay=4, n_train_episodes=2000, total_timesteps=4 * 2500, difficulty=0, mode_name="EASY", verbose=0,
         eval_base=True),
    dict(delay=4, n_train_episodes=5000, total_timesteps=4 * 3500, difficulty=1, mode_name="HARD", verbose=0,
         eval_base=True),
    dict(delay=16, n_train_episodes=7500, total_timesteps=16 * 3500, difficulty=0, mode_name="EASY", verbose=0,
         eval_base=False),
    dict(delay=32, n_train_episodes=7500, total_timesteps=32 * 5000, difficulty=1, mode_name="EASY", verbose=0,
         eval_base=False),
    dict(delay=256, n_train_episodes=20000, total_timesteps=256 * 10000, difficulty=0, mode_name="HARD", verbose=1,
         eval_base=False),
)
"""Seed 001's experiment list, verbatim (its last entry trains 2.56M env steps)."""


def _int(experiment: Mapping[str, Any], key: str, default: int | None, low: int) -> int:
    value = experiment.get(key, default)
    if value is None:
        raise ConfigError(f"experiment: missing key {key!r} ({EXPERIMENT_KEYS[key]})")
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"experiment: {key} = {value!r} is invalid: must be an integer >= {low}")
    return value


class AgentPerformanceBenchmark:
    """One experiment of seed 001: baselines and a TraceRL agent on the delayed-cue task.

    Args:
        experiment: keys of :data:`EXPERIMENT_KEYS` (an unknown key raises :class:`ConfigError`).
        memory_agent_config: keyword arguments of :class:`tracerl.TraceRL`, plus ``policy_class`` and,
            for the strategic memory, ``mem_dim``, ``max_entries`` and ``action_dim``: with ``mem_dim`` /
            ``max_entries`` a ``tracerl.StrategicMemoryBuffer(obs_dim, action_dim, mem_dim, max_entries,
            device)`` is built and passed as ``memory=``; otherwise ``memory`` names a registered core
            (default ``"gru"``). Any other key goes to ``TraceRL`` unchanged, so an unknown one raises
            ``TypeError`` there.

    Attributes:
        results: the rows of the last :meth:`run` (one dict per agent).
    """

    def __init__(self, experiment: Mapping[str, Any], memory_agent_config: Mapping[str, Any] | None = None) -> None:
        unknown = sorted(set(experiment) - set(EXPERIMENT_KEYS))
        if unknown:
            raise ConfigError(f"experiment: unknown key {unknown[0]!r}; valid keys: {', '.join(EXPERIMENT_KEYS)}")
        self.delay = _int(experiment, "delay", None, 1)
        if "total_timesteps" in experiment:
            self.total_timesteps = _int(experiment, "total_timesteps", None, 1)
        else:
            self.total_timesteps = _int(experiment, "n_train_episodes", None, 1) * self.delay
        self.difficulty = _int(experiment, "difficulty", 0, 0)
        if self.difficulty not in (0, 1):
            raise ConfigError(f"experiment: difficulty = {self.difficulty!r} is invalid: must be 0 or 1")
        self.mode_name = str(experiment.get("mode_name", "HARD" if self.difficulty else "EASY"))
        self.verbose = _int(experiment, "verbose", 0, 0)
        self.eval_base = experiment.get("eval_base", True)
        if not isinstance(self.eval_base, bool):
            raise ConfigError(f"experiment: eval_base = {self.eval_base!r} is invalid: must be True or False")
        self.seed = _int(experiment, "seed", 0, 0)
        self.n_eval_episodes = _int(experiment, "n_eval_episodes", 100, 1)
        self.experiment = dict(experiment)
        self.memory_agent_config = dict(memory_agent_config or {})
        self.results: list[dict[str, Any]] = []

    @property
    def env(self) -> EnvSpec:
        """The task: ``CueDelay(delay, difficulty)``."""
        return cue_delay(self.delay, self.difficulty)

    def build_memory_agent(self) -> Trainer:
        """The TraceRL agent of ``memory_agent_config`` on this experiment's task."""
        from ..agent import TraceRL

        cfg = dict(self.memory_agent_config)
        policy_class = cfg.pop("policy_class", None)
        mem_dim, max_entries = cfg.pop("mem_dim", None), cfg.pop("max_entries", None)
        action_dim = cfg.pop("action_dim", None)
        device = cfg.pop("device", "cpu")
        seed = cfg.pop("seed", self.seed)
        cfg.setdefault("verbose", 0)
        memory: Any = cfg.pop("memory", "gru")
        env = self.env
        if mem_dim is not None or max_entries is not None:
            memory = self._strategic_buffer(mem_dim, max_entries, action_dim, device, explicit="memory" in
                                            self.memory_agent_config)
        return TraceRLTrainer(TraceRL(policy_class=policy_class, env=env.id, env_kwargs=dict(env.kwargs),
                                      memory=memory, device=device, seed=seed, **cfg))

    def _strategic_buffer(self, mem_dim: Any, max_entries: Any, action_dim: Any, device: Any, explicit: bool) -> Any:
        import gymnasium

        import tracerl

        if explicit:
            raise ConfigError("memory_agent_config: give either memory= or mem_dim/max_entries (which build a "
                              "StrategicMemoryBuffer), not both")
        if mem_dim is None or max_entries is None:
            raise ConfigError(f"memory_agent_config: mem_dim = {mem_dim!r}, max_entries = {max_entries!r}: the "
                              "strategic memory needs both")
        buffer_cls = getattr(tracerl, "StrategicMemoryBuffer", None)
        if buffer_cls is None:
            raise ConfigError("memory_agent_config: mem_dim/max_entries configure tracerl.StrategicMemoryBuffer, "
                              "which this version of tracerl does not provide")
        space = gymnasium.make(self.env.id, **self.env.kwargs).observation_space
        return buffer_cls(obs_dim=int(space.shape[0]), action_dim=1 if action_dim is None else int(action_dim),
                          mem_dim=int(mem_dim), max_entries=int(max_entries), device=device)

    def _agents(self) -> list[tuple[str, Any]]:
        env, seed = self.env, self.seed
        agents: list[tuple[str, Any]] = []
        if self.eval_base:
            budget = self.total_timesteps  # SB3 fits its rollout to it and stops there: every agent gets the budget
            agents += [("PPO", lambda: SB3Trainer(make_sb3_ppo(env, seed, budget=budget))),
                       ("RecurrentPPO", lambda: SB3Trainer(make_recurrent_ppo(env, seed, budget=budget)))]
        agents.append(("TraceRL", self.build_memory_agent))
        return agents

    def row(self, agent: str, metrics: RunMetrics) -> dict[str, Any]:
        """One table row: the seed's columns, then success rate, env-steps/s and steps-to-threshold."""
        det = metrics.final["deterministic"]
        return {"Agent": agent, "Delay": self.delay, "Mode": self.mode_name, "Mean Ep Rew": det["mean_return"],
                "Std Ep Rew": det["std_return"], "Duration (s)": metrics.wall_seconds,
                "Success Rate": det["success_rate"], "Env-steps/s": metrics.steps_per_second,
                "Train Steps": metrics.train_steps, "Steps to 95%": metrics.steps_to_threshold}

    def run(self) -> list[dict[str, Any]]:
        """Train and evaluate every agent, print the table, return its rows (also kept in ``results``)."""
        from tabulate import tabulate

        from ..threads import torch_threads

        protocol = EvalProtocol(every=0, final_episodes=self.n_eval_episodes, modes=("deterministic",))
        with torch_threads(1):  # every agent single-threaded, as in tracerl's benchmarks
            rows = self._run_agents(protocol)
        self.results = rows
        columns = TABLE_COLUMNS + EXTRA_COLUMNS
        print(tabulate([[r[c] for c in columns] for r in rows], headers=list(columns), tablefmt="rounded_outline",
                       showindex=True, floatfmt=".3f"), flush=True)
        return rows

    def _run_agents(self, protocol: EvalProtocol) -> list[dict[str, Any]]:
        if self.verbose:
            print(f"\nTraining in {self.mode_name} mode with delay of {self.delay} steps\n", flush=True)
        rows = []
        for name, build in self._agents():
            bar = None
            if self.verbose:
                from tqdm.auto import tqdm

                bar = tqdm(total=self.total_timesteps, unit="step", desc=f"Training {name}", dynamic_ncols=True)
            try:
                metrics = train_and_evaluate(build, self.env, self.seed, self.total_timesteps, protocol, progress=bar)
            finally:
                if bar is not None:
                    bar.close()
            rows.append(self.row(name, metrics))
        return rows
