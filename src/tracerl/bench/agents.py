"""Named benchmark agents: the real SB3 / sb3-contrib baselines and one tracerl agent per memory core.

``sb3-ppo`` is ``stable_baselines3.PPO("MlpPolicy")`` (memoryless), ``sb3-recurrentppo`` is
``sb3_contrib.RecurrentPPO("MlpLstmPolicy")``, both at their own defaults with 8 envs; ``tracerl-<core>``
is :class:`tracerl.TraceRL` with that memory core at tracerl's defaults plus :func:`core_settings`;
``tracerl-<algo>-<core>`` (e.g. ``tracerl-r2d2-gru``, ``tracerl-sac-gru``) is the off-policy algorithm ``algo``
(every registered one driven by the standard off-policy learner: SAC, TD3, R2D2, DRQN) with that core, at the
algorithm's defaults plus :func:`offpolicy_core_settings` (TD3 needs a Box action space, R2D2 and DRQN a Discrete
one, SAC takes both: a run on another env fails with a ConfigError saying so). The tracerl names are generated from the
memory and algorithm registries at every call, so a core registered later (e.g. ``strategic``) is an agent at once.

Every agent is wrapped in a :class:`Trainer`: ``train(budget, on_update)`` calls ``on_update(steps)``
after each policy update (SB3: at the start of the next rollout) and stops when it returns False;
``predictor.predict(obs, state, episode_start, deterministic)`` acts with memory for evaluation.

Equal budgets: every agent trains on the same number of env steps. tracerl agents round up to whole
rollouts (``n_envs * n_steps``, 1,024 steps at the defaults). SB3 collects whole rollouts of
``n_steps * n_envs`` steps (16,384 for PPO's defaults), so at a smaller budget the SB3 agents get a shorter
rollout (:func:`fit_rollout`: ``n_steps = budget // n_envs``, batch size capped by the rollout) and a run
stops exactly at its budget (to within one vector step of ``n_envs``): a rollout the budget cuts short is
collected but not trained on. Explicit ``n_steps`` / ``batch_size`` keyword arguments are kept as given.
"""

from __future__ import annotations

import abc

from dataclasses import dataclass
from typing import Any, Callable

from ..errors import ConfigError
from .envs import SB3_N_ENVS, EncodedPredictor, EnvSpec, make_sb3_env, needs_flat_observation, observation_space

SB3_AGENTS: tuple[str, ...] = ("sb3-ppo", "sb3-recurrentppo")
"""The baselines, always available when stable-baselines3 and sb3-contrib are installed."""

TRACERL_PREFIX = "tracerl-"

UpdateHook = Callable[[int], bool]
"""``on_update(env_steps_so_far) -> keep_training``."""


class Trainer(abc.ABC):
    """A model plus the way to train it with a hook after every update.

    Attributes:
        model: the library's agent.
        predictor: what evaluation calls ``predict`` on (the model, or an adapter that encodes observations).
        should_stop: an optional ``() -> bool`` checked as often as the library allows (SB3: every vector
            step; tracerl: after every update, like ``on_update``); True stops training (equal-time budgets).
    """

    def __init__(self, model: Any, predictor: Any = None) -> None:
        self.model = model
        self.predictor = model if predictor is None else predictor
        self.should_stop: Callable[[], bool] | None = None

    @property
    def num_timesteps(self) -> int:
        """Env steps collected so far."""
        return int(self.model.num_timesteps)

    @abc.abstractmethod
    def train(self, budget: int, on_update: UpdateHook) -> None:
        """Train for about ``budget`` env steps, calling ``on_update(steps)`` after updates; stop early
        when it returns False."""


class TraceRLTrainer(Trainer):
    """Trains a :class:`tracerl.TraceRL` agent; ``on_update`` runs from ``learn``'s callback."""

    def env_for_rate(self) -> Any:
        """A fresh vector env like the agent's, without tracerl's checks around its sub-envs: tracerl's native
        batched env for its own tasks, else gymnasium's plain Sync/AsyncVectorEnv (whichever the agent's is) of
        the same number of ``gymnasium.make`` copies (None: the agent's env has no id to rebuild it from)."""
        import gymnasium
        from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

        from ..envs import REGISTERED_ENV_IDS, make_vec_env

        model = self.model
        env_id, n = getattr(model, "env_id", None), int(model.env.num_envs)
        if env_id is None:
            return None
        if env_id in REGISTERED_ENV_IDS or not isinstance(model.env, (SyncVectorEnv, AsyncVectorEnv)):
            return make_vec_env(env_id, n_envs=n, env_kwargs=dict(model.env_kwargs), vectorization="sync")
        mode = "async" if isinstance(model.env, AsyncVectorEnv) else "sync"
        return gymnasium.make_vec(env_id, num_envs=n, vectorization_mode=mode,
                                  vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP}, **dict(model.env_kwargs))

    def train(self, budget: int, on_update: UpdateHook) -> None:
        def callback(agent: Any, stats: Any) -> bool:
            if on_update(int(agent.num_timesteps)) is False:
                return False
            return not (self.should_stop is not None and self.should_stop())

        self.model.learn(budget, callback=callback)


class _OutOfTime(Exception):
    """Raised inside SB3's update phase when ``should_stop`` says the time budget is spent."""


class SB3Trainer(Trainer):
    """Trains an SB3 model; ``on_update`` runs at the start of every rollout after the first (i.e.
    after the previous update), and a False answer stops training at the next env step.

    Training stops at ``budget`` env steps: a rollout that would run past it is cut there (to within one
    vector step) and not trained on. ``should_stop`` is checked at every vector step and before every
    optimizer step, so an equal-time budget also stops SB3 inside its (long, otherwise uninterruptible)
    update phase: the model keeps the minibatch updates made before the deadline.

    ``env_spec``: the env the model trains on, from which :meth:`env_for_rate` builds a fresh copy."""

    def __init__(self, model: Any, predictor: Any = None, env_spec: EnvSpec | None = None) -> None:
        super().__init__(model, predictor)
        self.env_spec = env_spec

    def train(self, budget: int, on_update: UpdateHook) -> None:
        trainer = self
        optimizer = getattr(getattr(self.model, "policy", None), "optimizer", None)
        if self.should_stop is not None and optimizer is not None:
            step = optimizer.step

            def checked_step(*args: Any, **kwargs: Any) -> Any:
                if trainer.should_stop is not None and trainer.should_stop():
                    raise _OutOfTime
                return step(*args, **kwargs)

            optimizer.step = checked_step  # an instance attribute: removed again below
        try:
            self._learn(budget, on_update)
        except _OutOfTime:
            pass
        finally:
            if optimizer is not None and "step" in vars(optimizer):
                del optimizer.step

    def env_for_rate(self) -> Any:
        """A fresh copy of the SB3 model's training env: :func:`~tracerl.bench.envs.make_sb3_env` of the same env
        and number of sub-envs (None without ``env_spec``)."""
        if self.env_spec is None:
            return None
        return make_sb3_env(self.env_spec, 0, int(self.model.get_env().num_envs))

    def _learn(self, budget: int, on_update: UpdateHook) -> None:
        from stable_baselines3.common.callbacks import BaseCallback

        trainer = self

        class _Hook(BaseCallback):
            stop = False

            def _on_rollout_start(self) -> None:
                steps = int(self.model.num_timesteps)
                if steps > 0 and not self.stop:
                    self.stop = not on_update(steps)

            def _on_step(self) -> bool:
                if self.stop or (trainer.should_stop is not None and trainer.should_stop()):
                    self.stop = True
                    return False
                # the budget is reached and this rollout is not complete: stop (the rollout is not trained on)
                last_of_rollout = int(self.locals.get("n_steps", 0)) + 1 >= int(self.locals.get("n_rollout_steps", 1))
                return not (self.model.num_timesteps >= budget and not last_of_rollout)

        self.model.learn(budget, callback=_Hook())


# -- builders --------------------------------------------------------------------------------------
SB3_ROLLOUT_DEFAULTS: dict[str, tuple[int, int]] = {"sb3-ppo": (2048, 64), "sb3-recurrentppo": (128, 128)}
"""``(n_steps, batch_size)`` at each SB3 agent's own defaults."""


def fit_rollout(name: str, budget: int | None, n_envs: int, overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` plus ``n_steps`` / ``batch_size`` for SB3 agent ``name`` so that one rollout
    (``n_steps * n_envs``) fits in ``budget``: ``n_steps = min(default, max(1, budget // n_envs))``, batch size
    at most the rollout. Values given in ``overrides`` are kept; no budget keeps the defaults."""
    n_steps, batch = SB3_ROLLOUT_DEFAULTS[name]
    out = dict(overrides)
    if budget is None or n_steps * n_envs <= budget:
        return out
    steps = out.setdefault("n_steps", min(n_steps, max(2 if n_envs == 1 else 1, budget // n_envs)))
    out.setdefault("batch_size", min(batch, int(steps) * n_envs))
    return out


def _sb3_predictor(model: Any, env: EnvSpec) -> Any:
    space = observation_space(env)
    return EncodedPredictor(model, space) if needs_flat_observation(space) else model


def make_sb3_ppo(env: EnvSpec, seed: int, n_envs: int = SB3_N_ENVS, budget: int | None = None,
                 **overrides: Any) -> Any:
    """``stable_baselines3.PPO("MlpPolicy")`` (memoryless) at its defaults (plus ``overrides``; rollout fitted
    to ``budget`` by :func:`fit_rollout`), 8 envs."""
    from stable_baselines3 import PPO

    return PPO("MlpPolicy", make_sb3_env(env, seed, n_envs), seed=seed, verbose=0, device="cpu",
               **fit_rollout("sb3-ppo", budget, n_envs, overrides))


def make_recurrent_ppo(env: EnvSpec, seed: int, n_envs: int = SB3_N_ENVS, budget: int | None = None,
                       **overrides: Any) -> Any:
    """``sb3_contrib.RecurrentPPO("MlpLstmPolicy")`` at its defaults (plus ``overrides``; rollout fitted to
    ``budget`` by :func:`fit_rollout`), 8 envs."""
    from sb3_contrib import RecurrentPPO

    return RecurrentPPO("MlpLstmPolicy", make_sb3_env(env, seed, n_envs), seed=seed, verbose=0, device="cpu",
                        **fit_rollout("sb3-recurrentppo", budget, n_envs, overrides))


def core_settings(core: str, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """TraceRL keyword arguments a core needs beyond tracerl's defaults on a task (as in
    ``benchmarks/cores.py``): loop-over-time cores (NTM, DNC, slots) take 1024-step minibatches (NTM and
    DNC a small chrono-initialized controller), attention cores a window covering the delay (hcam: chunks
    of 8 steps, as many as cover it), the strategic memory learned retention and a whole episode per rollout."""
    delay = int(env_kwargs.get("delay", 64))
    if core == "strategic":  # the flagship as benchmarks/strategic.py runs it: a whole episode per rollout
        # (it reads raw steps by its own declaration, MemoryCore.input_form: no policy class to choose)
        n_steps = max(64, 1 << delay.bit_length())  # the smallest power of two > delay (>= episode length)
        return {"n_steps": n_steps, "batch_size": 4 * n_steps,
                "memory_learn_retention": True, "memory_kwargs": {"mem_dim": 32, "max_entries": 16}}
    if core in ("ntm", "dnc"):
        return {"hidden_size": 32, "batch_size": 1024,
                "memory_kwargs": {"memory_slots": 16, "memory_width": 8, "chrono_tmax": 256.0}}
    if core == "slots":
        return {"batch_size": 1024}
    if core == "transformer":
        return {"learning_rate": 1e-3, "memory_kwargs": {"window": delay}}
    if core == "gtrxl":
        return {"learning_rate": 1e-3, "memory_kwargs": {"memory_len": delay}}
    if core == "hcam":  # chunks of 8 steps, as many as the delay needs (memory_len >= delay, like the window)
        return {"learning_rate": 1e-3, "memory_kwargs": {"chunk_len": 8, "num_chunks": max(4, -(-delay // 8))}}
    return {}


def offpolicy_core_settings(algo: str, core: str, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """TraceRL keyword arguments a core needs with off-policy algorithm ``algo``: the memory-shaping part of
    :func:`core_settings` (memory kwargs, controller width; not PPO's rollout sizes); the strategic memory learns
    its retention only with an algorithm that trains a core's own losses (R2D2, DRQN), else reservoir sampling."""
    from ..algos.registry import get_algo

    settings = {k: v for k, v in core_settings(core, env_kwargs).items()
                if k in ("memory_kwargs", "hidden_size", "memory_learn_retention")}
    if "memory_learn_retention" in settings:
        settings["memory_learn_retention"] = bool(getattr(get_algo(algo).algorithm, "trains_memory_losses", False))
    return settings


def make_tracerl_agent(core: str, env: EnvSpec, seed: int, algo: str | None = None, **overrides: Any) -> Any:
    """A silent :class:`tracerl.TraceRL` with memory ``core`` on ``env``: :func:`core_settings` (with ``algo``, an
    off-policy algorithm: :func:`offpolicy_core_settings`) under ``overrides`` (``memory_kwargs`` are merged key by
    key)."""
    from ..agent import TraceRL

    kwargs = dict(core_settings(core, env.kwargs) if algo is None else offpolicy_core_settings(algo, core, env.kwargs))
    if algo is not None:
        kwargs["algo"] = algo
    for key, value in overrides.items():
        if key == "memory_kwargs" and isinstance(value, dict):
            kwargs["memory_kwargs"] = {**kwargs.get("memory_kwargs", {}), **value}
        else:
            kwargs[key] = value
    return TraceRL(env=env.id, env_kwargs=dict(env.kwargs), memory=core, seed=seed, verbose=0, **kwargs)


# -- registry --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AgentSpec:
    """A named benchmark agent.

    Attributes:
        name: e.g. ``sb3-ppo`` or ``tracerl-gru``.
        library: ``"sb3"`` or ``"tracerl"``.
        description: one line for ``tracerl bench --list``.
        build: ``build(env, seed, budget=None, **kwargs) -> Trainer`` (``budget``: the run's env steps, which
            the SB3 agents fit their rollout to).
        settings: ``settings(env) -> dict``: the settings the agent runs with beyond its keyword arguments (for
            tracerl agents :func:`tracerl_settings`), part of a run's identity so that a change of defaults makes
            new runs instead of reusing old ones; None: the agent's name and keyword arguments identify its runs
            (the SB3 agents: the library versions are recorded in each run, not part of its id).
    """

    name: str
    library: str
    description: str
    build: Callable[..., Trainer]
    settings: Callable[[EnvSpec], dict[str, Any]] | None = None


def tracerl_settings(core: str, algo: str | None, env: EnvSpec) -> dict[str, Any]:
    """What a ``tracerl-*`` agent runs with besides a run's ``agent_kwargs``: the defaults of every config of its
    algorithm (``tracerl train --help``'s groups: algorithm, network, options) and the core's benchmark settings
    (:func:`core_settings` / :func:`offpolicy_core_settings`). JSON-ready; the same on every machine."""
    import dataclasses

    from ..agent_config import agent_configs

    groups = {name: dataclasses.asdict(make()) for name, _, make in agent_configs(algo or "ppo")}
    core_kw = core_settings(core, env.kwargs) if algo is None else offpolicy_core_settings(algo, core, env.kwargs)
    return {"defaults": groups, "core_settings": core_kw}


def _sb3(factory: Callable[..., Any]) -> Callable[..., Trainer]:
    def build(env: EnvSpec, seed: int, budget: int | None = None, **kwargs: Any) -> Trainer:
        model = factory(env, seed, budget=budget, **kwargs)
        return SB3Trainer(model, _sb3_predictor(model, env), env_spec=env)

    return build


def _tracerl(core: str, algo: str | None = None) -> Callable[..., Trainer]:
    def build(env: EnvSpec, seed: int, budget: int | None = None, **kwargs: Any) -> Trainer:
        return TraceRLTrainer(make_tracerl_agent(core, env, seed, algo=algo, **kwargs))

    return build


def _tracerl_settings(core: str, algo: str | None = None) -> Callable[[EnvSpec], dict[str, Any]]:
    return lambda env: tracerl_settings(core, algo, env)


def offpolicy_bench_algos() -> tuple[str, ...]:
    """The off-policy algorithms with ``tracerl-<algo>-<core>`` agents: every registered one that the standard
    off-policy learner drives (SAC, TD3, R2D2, DRQN, and one registered by the user)."""
    from ..algos.registry import available_algos, get_algo

    return tuple(a for a in available_algos("off_policy") if get_algo(a).learner is None)


EPISODIC_AGENTS: dict[str, tuple[str, str, str]] = {
    "tracerl-nec-gru": ("nec", "gru", "NEC with keys from a GRU's state (recurrent NEC)"),
    "tracerl-nec-mlp": ("nec", "mlp", "NEC with MLP keys of the current observation (the paper's, memoryless)"),
    "tracerl-mfec": ("mfec", "gru", "MFEC with keys from a random (untrained) GRU's state"),
}
"""Episodic-control agents (issue 19): name -> (algo, memory core, description); tracerl's defaults otherwise."""


def agent_specs() -> dict[str, AgentSpec]:
    """Every agent by name: the two SB3 baselines, then ``tracerl-<core>`` for every registered core, then the
    episodic-control agents (:data:`EPISODIC_AGENTS`)."""
    from ..memory import available_memories

    specs = {
        "sb3-ppo": AgentSpec("sb3-ppo", "sb3", "stable_baselines3.PPO('MlpPolicy'), defaults, 8 envs (no memory; "
                             "non-Box observations one-hot encoded as tracerl does)",
                             _sb3(make_sb3_ppo)),
        "sb3-recurrentppo": AgentSpec("sb3-recurrentppo", "sb3",
                                      "sb3_contrib.RecurrentPPO('MlpLstmPolicy'), defaults, 8 envs (non-Box "
                                      "observations one-hot encoded as tracerl does)",
                                      _sb3(make_recurrent_ppo)),
    }
    for core in available_memories():
        name = TRACERL_PREFIX + core
        specs[name] = AgentSpec(name, "tracerl", f"tracerl.TraceRL(memory={core!r}), tracerl defaults",
                                _tracerl(core), _tracerl_settings(core))
    for algo in offpolicy_bench_algos():  # tracerl-<algo>-<core>: the off-policy algorithms
        for core in available_memories():
            name = f"{TRACERL_PREFIX}{algo}-{core}"
            specs[name] = AgentSpec(name, "tracerl", f"tracerl.TraceRL(algo={algo!r}, memory={core!r}), the "
                                    f"algorithm's defaults", _tracerl(core, algo), _tracerl_settings(core, algo))
    for name, (algo, core, what) in EPISODIC_AGENTS.items():
        specs[name] = AgentSpec(name, "tracerl", f"tracerl.TraceRL(algo={algo!r}, memory={core!r}): {what}",
                                _tracerl(core, algo), _tracerl_settings(core, algo))
    return specs


def available_agents() -> list[str]:
    """Valid agent names (baselines first, then tracerl cores in registry order)."""
    return list(agent_specs())


def get_agent(name: str, where: str = "agent") -> AgentSpec:
    """The agent named ``name``; an unknown name raises :class:`ConfigError` listing the valid ones."""
    specs = agent_specs()
    if name not in specs:
        raise ConfigError(f"{where}: unknown agent {name!r}; valid: {', '.join(specs)}")
    return specs[name]
