"""The one algorithm registry: name -> config class, config factory, algorithm class and kind.

``TraceRL(algo=name)`` builds the spec's learner (:mod:`tracerl.algos.learner`). Every place that needs the list
of algorithms (``TraceRL(algo=...)``, checkpoint loading, ``tracerl train``'s
``--algo`` and flags, ``tracerl list``, HER and env-restart validation) reads it here. Adding an algorithm is its
module plus one :func:`register_algo` call::

    register_algo("my_dqn", MyDQNConfig, MyDQN, kind="off_policy", doc="double DQN without dueling")
    TraceRL(env=..., algo="my_dqn")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal

from ..errors import ConfigError

Kind = Literal["on_policy", "off_policy"]
KINDS: tuple[str, ...] = ("on_policy", "off_policy")


@dataclass(frozen=True)
class AlgoSpec:
    """One registered algorithm."""

    name: str
    """The ``algo=`` name."""
    config_class: type
    """The dataclass of its hyperparameters (its fields are ``TraceRL`` keyword arguments and CLI flags)."""
    make_config: Callable[..., Any]
    """``make_config(**fields) -> config``: the config with this algorithm's defaults (e.g. ``PPOConfig.a2c``)."""
    algorithm: Callable[..., Any]
    """Its networks and update: on-policy, a class built as ``algorithm(policy, config, intrinsic_coef=...)``
    (PPO's interface); off-policy, a class built as ``algorithm(obs_dim, codec, config, policy_config,
    memory_factory, input_index, device, observation_space=...)`` (SAC's interface)."""
    kind: Kind
    """``"on_policy"`` (rollouts, the PPO family) or ``"off_policy"`` (sequence replay: SAC, TD3, R2D2, DRQN)."""
    doc: str = ""
    """One line for ``tracerl list``."""
    learner: Callable[..., Any] | None = None
    """The :class:`~tracerl.algos.learner.Learner` class ``TraceRL`` drives, built as
    ``learner(spec, hyperparams, memory=..., policy_class=..., aux_modules=..., device=...)``; None: the one of
    its kind (:class:`~tracerl.algos.ppo_learner.PPOLearner` on-policy,
    :class:`~tracerl.algos.offpolicy_learner.OffPolicyLearner` off-policy)."""

    @property
    def learner_class(self) -> Any:
        """:attr:`learner`, or the default learner of :attr:`kind`."""
        if self.learner is not None:
            return self.learner
        return default_learner(self.kind)


def default_learner(kind: str) -> Any:
    """The built-in learner class of ``kind``."""
    if kind == "on_policy":
        from .ppo_learner import PPOLearner

        return PPOLearner
    from .offpolicy_learner import OffPolicyLearner

    return OffPolicyLearner


_REGISTRY: dict[str, AlgoSpec] = {}


def register_algo(name: str, config_class: type, algorithm: Callable[..., Any], kind: Kind,
                  make_config: Callable[..., Any] | None = None, doc: str = "", overwrite: bool = False,
                  learner: Callable[..., Any] | None = None) -> AlgoSpec:
    """Register algorithm ``name`` (ConfigError if taken, unless ``overwrite``); returns its spec. ``learner``:
    a :class:`~tracerl.algos.learner.Learner` class of its own (None: the built-in one of ``kind``)."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(f"algorithm name {name!r} must be a Python identifier")
    if kind not in KINDS:
        raise ConfigError(f"kind={kind!r} is invalid: must be one of {', '.join(KINDS)}")
    if name in _REGISTRY and not overwrite:
        raise ConfigError(f"algorithm {name!r} is already registered (pass overwrite=True to replace it)")
    spec = AlgoSpec(name, config_class, make_config or config_class, algorithm, kind, doc, learner)
    _REGISTRY[name] = spec
    return spec


def unregister_algo(name: str) -> None:
    """Remove ``name`` from the registry (for tests that register their own algorithm)."""
    _REGISTRY.pop(name, None)


def get_algo(name: Any) -> AlgoSpec:
    """The spec of ``name``; ConfigError listing the valid names when it is not registered."""
    spec = _REGISTRY.get(name) if isinstance(name, str) else None
    if spec is None:
        raise ConfigError(f"unknown algo {name!r}; valid: {', '.join(_REGISTRY)}")
    return spec


def learner_classes() -> dict[str, Any]:
    """Checkpoint kind -> the learner class that writes and reads it, over every registered algorithm."""
    out: dict[str, Any] = {}
    for spec in _REGISTRY.values():
        cls = spec.learner_class
        out.setdefault(cls.checkpoint_kind, cls)
    return out


def available_algos(kind: Kind | None = None) -> tuple[str, ...]:
    """Registered algorithm names (of one kind, when given), in registration order."""
    return tuple(n for n, s in _REGISTRY.items() if kind is None or s.kind == kind)


def is_off_policy(name: Any) -> bool:
    """Whether ``name`` is a registered off-policy algorithm (False for anything not registered)."""
    spec = _REGISTRY.get(name) if isinstance(name, str) else None
    return spec is not None and spec.kind == "off_policy"


def _register_builtin() -> None:
    from .drqn import DRQNConfig
    from .mfec import MFEC, MFECConfig
    from .nec import NEC, EpisodicLearner, NECConfig
    from .ppo import PPO, PPOConfig
    from .r2d2 import R2D2, R2D2Config
    from .sac import SAC, SACConfig
    from .td3 import TD3, TD3Config

    register_algo("ppo", PPOConfig, PPO, "on_policy", doc="recurrent PPO (clipped surrogate, GAE, BPTT chunks)")
    register_algo("a2c", PPOConfig, PPO, "on_policy", make_config=PPOConfig.a2c,
                  doc="A2C: PPO's update with one epoch, no clipping")
    register_algo("reinforce", PPOConfig, PPO, "on_policy", make_config=PPOConfig.reinforce,
                  doc="REINFORCE on Monte Carlo returns over whole episodes")
    register_algo("sac", SACConfig, SAC, "off_policy", doc="recurrent SAC (Box actions)")
    register_algo("td3", TD3Config, TD3, "off_policy", doc="recurrent TD3 (Box actions)")
    register_algo("r2d2", R2D2Config, R2D2, "off_policy", doc="R2D2-style recurrent DQN (Discrete actions)")
    register_algo("drqn", DRQNConfig, R2D2, "off_policy",
                  doc="DRQN: R2D2's learner from a zero state, one-step DQN targets (Discrete actions)")
    register_algo("nec", NECConfig, NEC, "off_policy", learner=EpisodicLearner,
                  doc="Neural Episodic Control: a DND per action on the memory's keys (Discrete actions)")
    register_algo("mfec", MFECConfig, MFEC, "off_policy", learner=EpisodicLearner,
                  doc="Model-Free Episodic Control: max-return tables on random projections (Discrete actions)")


_register_builtin()

__all__ = ["AlgoSpec", "KINDS", "available_algos", "default_learner", "get_algo", "is_off_policy", "learner_classes",
           "register_algo", "unregister_algo"]
