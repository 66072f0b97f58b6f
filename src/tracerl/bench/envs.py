"""Benchmark environments: an env id with keyword arguments, validated by name, built for either library.

tracerl agents build their own batched VectorEnv from the id (:func:`tracerl.envs.make_vec_env`);
the stable-baselines3 baselines get SB3's ``make_vec_env`` of single envs from ``gymnasium.make``.

POPGym (``pip install 'tracerl[popgym]'``): ids ``popgym-<Name>Easy-v0`` are registered by ``import popgym``,
which :func:`ensure_registered` does in every process that makes one (workers are spawned afresh).

Observations for the SB3 baselines: SB3 accepts no ``Tuple`` observation space and sb3-contrib's
RecurrentPPO crashes on ``MultiDiscrete`` ones (POPGym CountRecall), so every non-``Box`` observation
space is given to them through :class:`FlatObservation`: the observation encoded by tracerl's own
:func:`tracerl.policies.encoders.preprocess` (one-hot of ``Discrete`` / ``MultiDiscrete``, ``Box`` flattened,
``Tuple`` / ``Dict`` children concatenated) as a float32 ``Box``. Both libraries then see the same numbers;
:class:`EncodedPredictor` applies the same encoding when a baseline is evaluated on the raw env.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import gymnasium
import numpy as np

from ..errors import ConfigError

CUE_ENV_ID = "tracerl/CueDelay-v0"
"""The registered id of tracerl's delayed-cue memory task."""

POPGYM_PREFIX = "popgym-"
"""Ids of the POPGym package's envs start with this."""

POPGYM_INSTALL_HINT = "pip install 'tracerl[popgym]' (or: pip install 'popgym>=1.0')"

POPGYM_EASY: tuple[str, ...] = (
    "Autoencode", "RepeatPrevious", "RepeatFirst", "CountRecall", "PositionOnlyCartPole", "PositionOnlyPendulum",
    "VelocityOnlyCartpole", "NoisyPositionOnlyCartPole", "NoisyPositionOnlyPendulum", "MultiarmedBandit",
    "HigherLower", "Battleship", "Concentration", "MineSweeper",
)
"""Every POPGym env that plain ``pip install popgym`` (1.0.x) registers, by the name in its id
(``popgym-<name>Easy-v0``). LabyrinthEscape and LabyrinthExplore need the extra package ``mazelib`` and are
left out."""

SB3_N_ENVS = 8
"""Parallel envs of the stable-baselines3 agents (SB3's ``make_vec_env`` of 8 single envs)."""


@dataclass(frozen=True)
class EnvSpec:
    """One benchmark environment.

    Attributes:
        id: a Gymnasium id (tracerl's, e.g. ``tracerl/CueDelay-v0``, or any registered one).
        kwargs: keyword arguments for ``gymnasium.make`` / tracerl's ``make_vec_env``.
        budget: env-step budget for runs on this env (None: the suite's budget).
        score: what scores a run on this env in the report: ``"success"`` (final held-out success rate, in
            [0, 1]) or ``"return"`` (final mean episode return; POPGym's lie in [-1, 1]). Not part of the
            run's identity: it changes the report, not the run.
    """

    id: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    budget: int | None = None
    score: str = "success"

    def __post_init__(self) -> None:
        if self.score not in SCORES:
            raise ConfigError(f"env {self.id}: score = {self.score!r} is invalid; valid: {', '.join(SCORES)}")

    @property
    def label(self) -> str:
        """A short readable name, e.g. ``CueDelay(delay=16,difficulty=1)``."""
        short = self.id.split("/")[-1].rsplit("-v", 1)[0]
        args = ",".join(f"{k}={v}" for k, v in sorted(self.kwargs.items()))
        return f"{short}({args})" if args else short

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form (the budget is part of the run, not of the env, and is left out)."""
        return {"id": self.id, "kwargs": dict(sorted(self.kwargs.items()))}

    def key(self) -> str:
        """Canonical JSON of :meth:`to_json` (stable across processes and sessions)."""
        return json.dumps(self.to_json(), sort_keys=True)


SCORES: tuple[str, ...] = ("success", "return")
"""What can score a run: the final held-out success rate or the final mean episode return."""


def ensure_registered(env_id: str) -> None:
    """Import the package that registers ``env_id`` when it is not tracerl's own: ``popgym`` for
    ``popgym-*`` ids (a missing package is a :class:`ConfigError` saying how to install it)."""
    import tracerl.envs  # noqa: F401  (registers tracerl's ids)

    if env_id.startswith(POPGYM_PREFIX):
        try:
            import popgym  # noqa: F401
        except ImportError as exc:
            raise ConfigError(f"env {env_id!r} is a POPGym env, and popgym is not installed: "
                              f"{POPGYM_INSTALL_HINT}") from exc


def popgym_env(name: str, budget: int | None = None) -> EnvSpec:
    """POPGym's ``<name>`` at Easy difficulty, ``popgym-<name>Easy-v0``, scored by its episode return."""
    return EnvSpec(f"{POPGYM_PREFIX}{name}Easy-v0", {}, budget, score="return")


def valid_env_ids() -> list[str]:
    """tracerl's own registered ids (any other registered Gymnasium id is accepted too)."""
    from ..envs import REGISTERED_ENV_IDS

    return list(REGISTERED_ENV_IDS)


def check_env_id(env_id: str, where: str = "env") -> None:
    """Raise :class:`ConfigError` naming ``env_id`` and the valid ids when Gymnasium does not know it."""
    import gymnasium

    ensure_registered(env_id)
    if env_id not in gymnasium.registry:
        raise ConfigError(f"{where}: unknown env {env_id!r}; valid: {', '.join(valid_env_ids())} "
                          "(or any registered Gymnasium id)")


def make_sb3_env(env: EnvSpec, seed: int, n_envs: int = SB3_N_ENVS) -> Any:
    """SB3's ``make_vec_env`` (a Monitor-wrapped DummyVecEnv) of ``n_envs`` copies of ``env``; a non-``Box``
    observation space is flattened by :class:`FlatObservation` (see the module docstring)."""
    import gymnasium
    from stable_baselines3.common.env_util import make_vec_env

    ensure_registered(env.id)
    kwargs = dict(env.kwargs)

    def make() -> Any:
        single = gymnasium.make(env.id, disable_env_checker=True, **kwargs)
        return FlatObservation(single) if needs_flat_observation(single.observation_space) else single

    return make_vec_env(make, n_envs=n_envs, seed=seed)


def observation_space(env: EnvSpec) -> Any:
    """The raw observation space of ``env`` (one env built and closed)."""
    import gymnasium

    ensure_registered(env.id)
    single = gymnasium.make(env.id, disable_env_checker=True, **dict(env.kwargs))
    try:
        return single.observation_space
    finally:
        single.close()


# -- the SB3 baselines' observation encoding --------------------------------------------------------
def needs_flat_observation(space: Any) -> bool:
    """Whether the SB3 baselines get ``space`` through :class:`FlatObservation` (every non-``Box`` space)."""
    from gymnasium import spaces

    return not isinstance(space, spaces.Box)


def _bounds(space: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature low and high of tracerl's flat encoding of ``space``."""
    from gymnasium import spaces

    from ..policies.encoders import flat_dim

    if isinstance(space, spaces.Box):
        return (np.asarray(space.low, dtype=np.float32).reshape(-1),
                np.asarray(space.high, dtype=np.float32).reshape(-1))
    if isinstance(space, (spaces.Tuple, spaces.Dict)):
        children = space.spaces if isinstance(space, spaces.Tuple) else list(space.spaces.values())
        parts = [_bounds(s) for s in children]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    n = flat_dim(space)  # Discrete, MultiDiscrete (one-hots), MultiBinary (0/1)
    return np.zeros(n, dtype=np.float32), np.ones(n, dtype=np.float32)


def encode_observation(space: Any, obs: Any) -> np.ndarray:
    """``obs`` (one observation, or a batch with leading dims) encoded as tracerl encodes it:
    :func:`tracerl.policies.encoders.preprocess` as a float32 array ``[*lead, flat_dim(space)]``."""
    from ..policies.encoders import preprocess

    return preprocess(space, obs).numpy()


class FlatObservation(gymnasium.ObservationWrapper):
    """One env whose observations are tracerl's flat float32 encoding of the original ones (one-hot of
    ``Discrete`` / ``MultiDiscrete``, ``Box`` flattened, ``Tuple`` / ``Dict`` concatenated), as a ``Box``.

    The SB3 baselines see non-``Box`` observations through this, so they get exactly the numbers a
    tracerl agent's encoder gets (and RecurrentPPO runs on ``MultiDiscrete`` and ``Tuple`` spaces).

    Attributes:
        raw_space: the wrapped env's own observation space.
    """

    def __init__(self, env: gymnasium.Env) -> None:
        super().__init__(env)
        self.raw_space = env.observation_space
        low, high = _bounds(self.raw_space)
        self.observation_space = gymnasium.spaces.Box(low=low, high=high, dtype=np.float32)

    def observation(self, observation: Any) -> np.ndarray:
        """The encoded observation."""
        return encode_observation(self.raw_space, observation)


class EncodedPredictor:
    """A baseline trained on :class:`FlatObservation` envs, evaluated on raw ones: ``predict`` encodes the
    observation batch the same way, then calls the model's ``predict`` (memory state passed through)."""

    def __init__(self, model: Any, space: Any) -> None:
        self.model = model
        self.space = space

    @property
    def num_timesteps(self) -> int:
        """The model's env-step counter."""
        return int(self.model.num_timesteps)

    def predict(self, obs: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False) -> Any:
        """``model.predict`` on the encoded batch."""
        return self.model.predict(encode_observation(self.space, obs), state, episode_start,
                                  deterministic=deterministic)


def cue_delay(delay: int, difficulty: int = 1, budget: int | None = None) -> EnvSpec:
    """The delayed-cue task ``CueDelay(delay, difficulty)`` as an :class:`EnvSpec`."""
    return EnvSpec(CUE_ENV_ID, {"delay": int(delay), "difficulty": int(difficulty)}, budget)
