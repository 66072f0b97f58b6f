"""Named benchmark agents: the real SB3 / sb3-contrib baselines and one tracerl agent per memory core.

``sb3-ppo`` is ``stable_baselines3.PPO("MlpPolicy")`` (memoryless), ``sb3-recurrentppo`` is
``sb3_contrib.RecurrentPPO("MlpLstmPolicy")``, both at their own defaults with 8 envs; ``tracerl-<core>``
is :class:`tracerl.TraceRL` with that memory core at tracerl's defaults plus :func:`core_settings`.
The tracerl names are generated from the memory registry at every call, so a core registered later
(e.g. ``strategic``) is an agent at once.

Every agent is wrapped in a :class:`Trainer`: ``train(budget, on_update)`` calls ``on_update(steps)``
after each policy update (SB3: at the start of the next rollout) and stops when it returns False;
``model.predict(obs, state, episode_start, deterministic)`` acts with memory for evaluation.
"""

from __future__ import annotations

import abc

from dataclasses import dataclass
from typing import Any, Callable

from ..errors import ConfigError
from .envs import SB3_N_ENVS, EnvSpec, make_sb3_env

SB3_AGENTS: tuple[str, ...] = ("sb3-ppo", "sb3-recurrentppo")
"""The baselines, always available when stable-baselines3 and sb3-contrib are installed."""

TRACERL_PREFIX = "tracerl-"

UpdateHook = Callable[[int], bool]
"""``on_update(env_steps_so_far) -> keep_training``."""


class Trainer(abc.ABC):
    """A model plus the way to train it with a hook after every update."""

    def __init__(self, model: Any) -> None:
        self.model = model

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

    def train(self, budget: int, on_update: UpdateHook) -> None:
        self.model.learn(budget, callback=lambda agent, stats: on_update(int(agent.num_timesteps)))


class SB3Trainer(Trainer):
    """Trains an SB3 model; ``on_update`` runs at the start of every rollout after the first (i.e.
    after the previous update), and a False answer stops training at the next env step."""

    def train(self, budget: int, on_update: UpdateHook) -> None:
        from stable_baselines3.common.callbacks import BaseCallback

        class _Hook(BaseCallback):
            stop = False

            def _on_rollout_start(self) -> None:
                steps = int(self.model.num_timesteps)
                if steps > 0 and not self.stop:
                    self.stop = not on_update(steps)

            def _on_step(self) -> bool:
                return not self.stop

        self.model.learn(budget, callback=_Hook())


# -- builders --------------------------------------------------------------------------------------
def make_sb3_ppo(env: EnvSpec, seed: int, n_envs: int = SB3_N_ENVS, **overrides: Any) -> Any:
    """``stable_baselines3.PPO("MlpPolicy")`` (memoryless) at its defaults (plus ``overrides``), 8 envs."""
    from stable_baselines3 import PPO

    return PPO("MlpPolicy", make_sb3_env(env, seed, n_envs), seed=seed, verbose=0, device="cpu", **overrides)


def make_recurrent_ppo(env: EnvSpec, seed: int, n_envs: int = SB3_N_ENVS, **overrides: Any) -> Any:
    """``sb3_contrib.RecurrentPPO("MlpLstmPolicy")`` at its defaults (plus ``overrides``), 8 envs."""
    from sb3_contrib import RecurrentPPO

    return RecurrentPPO("MlpLstmPolicy", make_sb3_env(env, seed, n_envs), seed=seed, verbose=0, device="cpu",
                        **overrides)


def core_settings(core: str, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """TraceRL keyword arguments a core needs beyond tracerl's defaults on a task (as in
    ``benchmarks/cores.py``): loop-over-time cores (NTM, DNC, slots) take 1024-step minibatches (NTM and
    DNC a small chrono-initialized controller), attention cores a window covering the delay, the strategic
    memory its own policy with learned retention and a whole episode per rollout."""
    delay = int(env_kwargs.get("delay", 64))
    if core == "strategic":  # the flagship as benchmarks/strategic.py runs it: a whole episode per rollout
        from ..policies.strategic import StrategicMemoryTransformerPolicy

        n_steps = max(64, 1 << delay.bit_length())  # the smallest power of two > delay (>= episode length)
        return {"policy_class": StrategicMemoryTransformerPolicy, "n_steps": n_steps, "batch_size": 4 * n_steps,
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
    return {}


def make_tracerl_agent(core: str, env: EnvSpec, seed: int, **overrides: Any) -> Any:
    """A silent :class:`tracerl.TraceRL` with memory ``core`` on ``env``: :func:`core_settings` under
    ``overrides`` (``memory_kwargs`` are merged key by key)."""
    from ..agent import TraceRL

    kwargs = dict(core_settings(core, env.kwargs))
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
        build: ``build(env, seed, **kwargs) -> Trainer``.
    """

    name: str
    library: str
    description: str
    build: Callable[..., Trainer]


def _sb3(factory: Callable[..., Any]) -> Callable[..., Trainer]:
    def build(env: EnvSpec, seed: int, **kwargs: Any) -> Trainer:
        return SB3Trainer(factory(env, seed, **kwargs))

    return build


def _tracerl(core: str) -> Callable[..., Trainer]:
    def build(env: EnvSpec, seed: int, **kwargs: Any) -> Trainer:
        return TraceRLTrainer(make_tracerl_agent(core, env, seed, **kwargs))

    return build


def agent_specs() -> dict[str, AgentSpec]:
    """Every agent by name: the two SB3 baselines, then ``tracerl-<core>`` for every registered core."""
    from ..memory import available_memories

    specs = {
        "sb3-ppo": AgentSpec("sb3-ppo", "sb3", "stable_baselines3.PPO('MlpPolicy'), defaults, 8 envs (no memory)",
                             _sb3(make_sb3_ppo)),
        "sb3-recurrentppo": AgentSpec("sb3-recurrentppo", "sb3",
                                      "sb3_contrib.RecurrentPPO('MlpLstmPolicy'), defaults, 8 envs",
                                      _sb3(make_recurrent_ppo)),
    }
    for core in available_memories():
        name = TRACERL_PREFIX + core
        specs[name] = AgentSpec(name, "tracerl", f"tracerl.TraceRL(memory={core!r}), tracerl defaults",
                                _tracerl(core))
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
