"""What recurrent SAC, TD3 and R2D2 share: the base config, the collector that fills the sequence replay,
and unrolling a torso over a replayed window (burn-in without gradient, then the training rows).

Data flow::

    VectorEnv --OffPolicyCollector.step--> SequenceReplay.add (rows + states every k steps)
    SequenceReplay.sample --SequenceBatch [T, N]--> (HER relabel) --> algorithm.update(batch)

An algorithm (``SAC``, ``TD3``, ``R2D2``) owns its networks and optimizers and exposes:

* ``torsos() -> {name: RecurrentTorso}``: the online torsos whose states the replay stores (stepped while
  acting, so every stored state is the one the online network had at insertion time);
* ``act(features: {name: [B, H]}, explore: bool, env_index) -> [B, *action_shape]`` normalized actions;
* ``update(batch) -> (stats, td_abs [T', N] or None)``;
* ``modules() / optimizers()`` for checkpoints.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, Mapping

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from ..config_checks import ANY, NON_NEGATIVE, POSITIVE, POSITIVE_INT, UNIT, Range, validate_fields
from ..config_docs import field_docs
from ..data.replay import SequenceBatch, SequenceReplay
from ..data.rollout import EpisodeStats, _env_restarted, _final_info_success, _index_obs
from ..envs.output_check import check_batch
from ..errors import ConfigError, NonFiniteError
from ..memory import State
from ..memory.base import TensorSpec, Trace
from ..policies.carry import Carry
from ..policies.encoders import preprocess
from .recurrent_nets import ActionCodec, RecurrentTorso


@dataclass
class OffPolicyConfig:
    """Hyperparameters shared by recurrent SAC, TD3 and R2D2 (replay, windows, update schedule)."""

    n_envs: int = 8
    """Parallel environments (ignored when a VectorEnv is passed: its num_envs is used)."""
    buffer_size: int = 100_000
    """Replay capacity in rows (env steps plus one final row per episode), shared evenly by the envs."""
    burn_in: int = 0
    """Steps replayed from the stored state only to warm the memory (no gradient, not in any loss)."""
    seq_len: int = 16
    """Training steps per replayed window."""
    state_stride: int | None = None
    """Store the memory state every this many steps of an episode (None: gcd(burn_in, seq_len), or seq_len)."""
    batch_size: int = 32
    """Windows per gradient step (a gradient step trains on up to batch_size * seq_len steps)."""
    learning_starts: int = 1_000
    """Env steps of uniformly random actions before the first gradient step."""
    train_freq: int = 1
    """Vector-env steps between rounds of gradient steps."""
    gradient_steps: int = 1
    """Gradient steps per round."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak coefficient of the target networks (1.0: hard copies)."""
    target_update_interval: int = 1
    """Gradient steps between target-network updates."""
    learning_rate: float = 1e-3
    """Adam step size of every network (and of SAC's temperature)."""
    head_hidden: tuple[int, ...] = (64,)
    """Hidden layer widths of the MLP heads on top of the memory (actor, critics, Q)."""
    max_grad_norm: float = 10.0
    """Global gradient-norm clip per network (<= 0 disables it)."""
    include_first_step_in_targets: bool = True
    """Target networks replay the same window as the online ones, from the same stored state (True), or, as
    RLtools does without it, start one step later from a fresh state (False; seed 003's flag)."""
    always_sample_from_initial_state: bool = False
    """Sample only windows that start at an episode's first step (seed 003's flag)."""
    random_seq_len: bool = False
    """Train on a uniformly random number (1..seq_len) of each window's steps (seed 003's flag)."""
    nominal_seq_len_prob: float = 0.5
    """With random_seq_len: probability of training on all seq_len steps instead (seed 003's flag)."""
    mask_non_terminal: bool = False
    """Actor loss on the last training step of each window only (seed 003's MASK_NON_TERMINAL)."""
    prioritized: bool = False
    """R2D2 prioritized sequence replay: p = eta max|delta| + (1 - eta) mean|delta| over a window."""
    priority_alpha: float = 0.9
    """Prioritization exponent alpha (P(i) proportional to p_i^alpha)."""
    priority_eta: float = 0.9
    """Weight eta of the max in the sequence priority."""
    priority_beta: float = 0.6
    """Importance-sampling exponent beta."""
    her: bool = False
    """Hindsight experience replay: relabel replayed windows with goals achieved later (goal-conditioned Dict envs:
    observation, achieved_goal, desired_goal; tracerl.data.her)."""
    her_strategy: Literal["future", "final"] = "future"
    """HER goal choice for a relabelled window: an achieved goal later in the episode, or the episode's last."""
    her_ratio: float = 0.8
    """Fraction of sampled windows relabelled by HER (when her=True)."""
    observe_achieved_goal: bool = True
    """Goal envs (Dict observations with achieved_goal and desired_goal): feed the achieved_goal entry to the
    networks (False: only observation and desired_goal, with or without HER; a ConfigError for other spaces)."""

    _field_ranges = {  # valid values per field, checked with the annotations by tracerl.config_checks
        "n_envs": Range(1, 4096), "buffer_size": Range(1, 10**8), "burn_in": Range(0, 10**5), "seq_len": Range(1, 10**5),
        "state_stride": Range(1, 10**5), "batch_size": Range(1, 10**5), "learning_starts": NON_NEGATIVE,
        "train_freq": POSITIVE_INT, "gradient_steps": Range(1, 10**4), "gamma": UNIT, "tau": Range(0, 1, lo_open=True),
        "target_update_interval": POSITIVE_INT, "learning_rate": POSITIVE, "head_hidden": Range(1, 65536),
        "max_grad_norm": ANY, "nominal_seq_len_prob": UNIT, "priority_alpha": NON_NEGATIVE, "priority_eta": UNIT,
        "priority_beta": UNIT, "her_ratio": UNIT,
    }

    def __post_init__(self) -> None:
        validate_fields(self)

    @property
    def lookahead(self) -> int:
        """Rows after the training steps needed by the targets."""
        return 1

    @property
    def stride(self) -> int:
        if self.state_stride is not None:
            return self.state_stride
        return math.gcd(self.burn_in, self.seq_len) if self.burn_in > 0 else self.seq_len

    def _bad(self, name: str, rng: str) -> ConfigError:
        return ConfigError(f"{name}={getattr(self, name)!r} is invalid: must be {rng}")

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid field, its value and the valid range."""
        validate_fields(self)  # types, finiteness and ranges of every field (fields may be reassigned)
        for name in ("n_envs", "seq_len", "batch_size", "train_freq", "gradient_steps", "target_update_interval",
                     "buffer_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise self._bad(name, "an int >= 1")
        for name in ("burn_in", "learning_starts"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise self._bad(name, "an int >= 0")
        if self.state_stride is not None and (not isinstance(self.state_stride, int) or self.state_stride < 1):
            raise self._bad("state_stride", "None or an int >= 1")
        if self.burn_in % self.stride:
            raise ConfigError(f"burn_in={self.burn_in} is invalid: must be a multiple of state_stride={self.stride} "
                              "(the burn-in starts on a stored state)")
        window = self.burn_in + self.seq_len + self.lookahead
        if self.buffer_size // self.n_envs < window:
            raise ConfigError(
                f"buffer_size={self.buffer_size} is invalid: it gives {self.buffer_size // self.n_envs} rows per env "
                f"for n_envs={self.n_envs}, but one window is burn_in + seq_len + lookahead = {window} rows; "
                f"buffer_size must be >= {window * self.n_envs}")
        if not 0.0 <= self.gamma <= 1.0:
            raise self._bad("gamma", "in [0, 1]")
        if not 0.0 < self.tau <= 1.0:
            raise self._bad("tau", "in (0, 1]")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise self._bad("learning_rate", "> 0 and finite")
        if any((not isinstance(h, int)) or h < 1 for h in self.head_hidden):
            raise self._bad("head_hidden", "a tuple of ints >= 1")
        for name, lo, hi in (("nominal_seq_len_prob", 0.0, 1.0), ("priority_eta", 0.0, 1.0), ("her_ratio", 0.0, 1.0),
                             ("priority_beta", 0.0, 1.0)):
            if not lo <= getattr(self, name) <= hi:
                raise self._bad(name, f"in [{lo}, {hi}]")
        if not self.priority_alpha >= 0:
            raise self._bad("priority_alpha", ">= 0")
        if self.her_strategy not in ("future", "final"):
            raise self._bad("her_strategy", "'future' or 'final'")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["head_hidden"] = list(self.head_hidden)
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "OffPolicyConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} keys: {', '.join(unknown)}")
        d = dict(d)
        if "head_hidden" in d:
            d["head_hidden"] = tuple(d["head_hidden"])
        return cls(**d)


def config_field_docs(cls: type) -> dict[str, str]:
    """Field docstrings of a config dataclass and of its bases (for the CLI's help)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is object:
            continue
        docs.update(field_docs(klass))
    return docs


# -- unrolling windows ----------------------------------------------------------------------------------
def batch_state(batch: SequenceBatch, module: str) -> State:
    """The stored state of ``module`` (replay names ``module.entry``) -> ``{entry: [N, ...]}``."""
    prefix = module + "."
    return {k[len(prefix):]: v for k, v in batch.state.items() if k.startswith(prefix)}


def unroll(torso: RecurrentTorso, batch: SequenceBatch, state: State, grad: bool) -> Tensor:
    """Run ``torso`` over a window: the burn-in rows without gradient from the stored ``state``, then the rest.

    Returns:
        features ``[T - burn_in, N, H]`` of rows ``burn_in .. T-1`` (with gradient when ``grad``; the burn-in never
        receives gradient).
    """
    b = batch.burn_in
    state = _burn_in(torso, batch, state)
    with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
        h, _ = torso(batch.obs[b:], state, batch.episode_start[b:], batch.prev_action[b:], batch.prev_reward[b:])
    return h


def unroll_traced(torso: RecurrentTorso, batch: SequenceBatch, state: State) -> tuple[Tensor, Trace]:
    """:func:`unroll` with gradient that also returns the core's trace of rows ``burn_in ..``, for the core's
    memory losses. The core gets the training inputs it declares (:meth:`~tracerl.memory.MemoryCore.training_inputs`)
    for rows ``burn_in ..``: each row's reward (0 on final rows), action taken (encoded as the torso encodes the
    previous action), episode end (the next row is the final row after termination) and step mask (the window's
    real rows, ``batch.valid``); its eviction decisions are made afresh with the current parameters, as the
    whole window is."""
    b = batch.burn_in
    state = _burn_in(torso, batch, state)
    wants = torso.core.training_inputs()

    def ends() -> Tensor:  # a step whose next row is the final row after termination ends its episode
        return (batch.has_action & torch.cat([batch.terminal[1:], torch.zeros_like(batch.terminal[:1])]))[b:]

    replay = wants.fill(reward=lambda: batch.reward[b:] * batch.has_action[b:],
                        action=lambda: torso.action_features(batch.action[b:]), episode_end=ends,
                        step_mask=lambda: batch.valid[b:].bool())
    h, _, trace = torso.forward_replay(batch.obs[b:], state, batch.episode_start[b:], batch.prev_action[b:],
                                       batch.prev_reward[b:], replay or None)
    return h, trace


def _burn_in(torso: RecurrentTorso, batch: SequenceBatch, state: State) -> State:
    """The state after the burn-in rows (run without gradient), detached."""
    b = batch.burn_in
    if b > 0:
        with torch.no_grad():
            _, state = torso(batch.obs[:b], state, batch.episode_start[:b], batch.prev_action[:b],
                             batch.prev_reward[:b])
    return {k: v.detach() for k, v in state.items()}


@torch.no_grad()
def unroll_target(torso: RecurrentTorso, batch: SequenceBatch, state: State, include_first_step: bool) -> Tensor:
    """A target network's features for rows ``burn_in .. T-1`` (``[T - burn_in, N, H]``, no gradient).

    ``include_first_step=True`` replays the whole window from the stored state, like the online network.
    ``False`` is RLtools' behaviour without INCLUDE_FIRST_STEP_IN_TARGETS: the target sequence starts one row
    after the first training step from a fresh state, so it never sees the rows before it (row ``burn_in`` gets
    zero features; it is only ever a bootstrap row for earlier rows, which are not trained).
    """
    if include_first_step:
        return unroll(torso, batch, state, grad=False)
    b = batch.burn_in
    rows = slice(b + 1, None)
    start = batch.episode_start[rows].clone()
    start[0] = True
    h, _ = torso(batch.obs[rows], torso.initial_state(batch.N, batch.obs.device), start, batch.prev_action[rows],
                 batch.prev_reward[rows])
    return torch.cat([torch.zeros_like(h[:1]), h], 0)


def actor_mask(train: Tensor, mask_non_terminal: bool) -> Tensor:
    """Steps in the actor loss: every training step, or only the last one of each window (``[T', N]`` bool)."""
    if not mask_non_terminal:
        return train
    T = train.shape[0]
    idx = torch.arange(T, device=train.device).unsqueeze(1).expand_as(train)
    last = torch.where(train, idx, torch.full_like(idx, -1)).max(0).values
    return train & (idx == last.unsqueeze(0))


def clip_and_step(optimizer: torch.optim.Optimizer, params: list[torch.nn.Parameter], max_norm: float, what: str) -> float:
    """Clip the gradient norm of ``params`` (if ``max_norm > 0``) and step; NonFiniteError on a NaN/inf gradient."""
    grads = [p for p in params if p.grad is not None]
    if not grads:
        return 0.0
    if max_norm > 0:
        norm = torch.nn.utils.clip_grad_norm_(grads, max_norm)
    else:
        norm = torch.norm(torch.stack([p.grad.norm() for p in grads]))
    if not bool(torch.isfinite(norm)):
        optimizer.zero_grad(set_to_none=True)
        raise NonFiniteError(f"{what}: gradient norm is {float(norm)}")
    optimizer.step()
    return float(norm)


# -- collection -----------------------------------------------------------------------------------------
class OffPolicyCollector:
    """Steps a SAME_STEP-autoreset vector env with an algorithm's online torsos and writes every step (and the
    memory states every ``state_stride`` steps) into a :class:`SequenceReplay`.

    Carries across calls the flat observation and one :class:`~tracerl.policies.carry.Carry` for every online
    torso (their states, keyed by torso name, the previous action and reward, episode starts). The replay stores
    the carry's convention: states with the step's episode starts applied (``Carry.stored_states``), previous
    action and reward zeroed at episode starts (``Carry.masked_inputs``).
    """

    def __init__(self, env: gym.vector.VectorEnv, algorithm: Any, replay: SequenceReplay, codec: ActionCodec,
                 obs_space: gym.Space, device: torch.device) -> None:
        self.env = env
        self.algorithm = algorithm
        self.replay = replay
        self.codec = codec
        self.obs_space = obs_space
        self.device = device
        self.n_envs = env.num_envs
        self.stats = EpisodeStats(self.n_envs)
        self.total_steps = 0
        self.obs: Tensor | None = None
        self.last_step: tuple[np.ndarray, np.ndarray, Tensor] | None = None
        self.random_rng = np.random.default_rng(0)

    def flat(self, obs: Any) -> Tensor:
        x = preprocess(self.obs_space, obs, self.device)
        if not bool(torch.isfinite(x).all()):
            bad = torch.nonzero(~torch.isfinite(x).all(-1)).flatten().tolist()
            raise NonFiniteError(f"non-finite observation from env index {bad} at step {self.total_steps // self.n_envs}")
        return x

    def reset(self, seed: int | None = None) -> None:
        obs, _ = self.env.reset(seed=seed)
        zeros = np.zeros(self.n_envs)
        check_batch(self.env.single_observation_space, self.n_envs, obs, zeros, zeros, zeros)
        self.obs = self.flat(obs)
        B = self.n_envs
        self.carry = Carry.initial(self.algorithm.torsos(), B, self.codec.shape, self.codec.dtype, self.device)
        self.stats = EpisodeStats(B)
        self.random_rng = np.random.default_rng(seed)

    def random_actions(self) -> Tensor:
        """Uniform normalized actions ``[B, *shape]`` (the warm-up before learning starts)."""
        B = self.n_envs
        if self.codec.discrete:
            return torch.as_tensor(self.random_rng.integers(0, self.codec.n, size=B), device=self.device)
        return torch.as_tensor(self.random_rng.uniform(-1.0, 1.0, size=(B, self.codec.dim)).astype(np.float32),
                               device=self.device)

    @torch.no_grad()
    def step(self, random_actions: bool = False) -> None:
        """One vector-env step: act, step the env, write the replay rows, advance the carried state."""
        if self.obs is None:
            raise RuntimeError("OffPolicyCollector.reset() must be called before step()")
        carry = self.carry
        start = carry.episode_start
        torsos = self.algorithm.torsos()
        stored: dict[str, Tensor] = {}
        features: dict[str, Tensor] = {}
        new_states: dict[str, State] = {}
        for name, s in carry.stored_states({m: t.core for m, t in torsos.items()}).items():
            stored.update({f"{name}.{k}": v for k, v in s.items()})
            h, new_states[name] = torsos[name](self.obs[None], s, start[None], carry.prev_action[None],
                                               carry.prev_reward[None])
            features[name] = h[0]
        action = (self.random_actions() if random_actions
                  else self.algorithm.act(features, explore=True, obs=self.obs, episode_start=start))
        env_action = self.codec.to_env(action)
        next_obs, reward, terminated, truncated, infos = self.env.step(env_action)
        check_batch(self.env.single_observation_space, self.n_envs, next_obs, reward, terminated, truncated)
        reward = np.asarray(reward, dtype=np.float32)
        if not np.isfinite(reward).all():
            raise NonFiniteError(f"non-finite reward from env index {np.flatnonzero(~np.isfinite(reward)).tolist()}")
        terminated = np.asarray(terminated, dtype=bool)
        truncated = np.asarray(truncated, dtype=bool)
        done = terminated | truncated
        # sub-envs that crashed (or hung) and were rebuilt by ResilientVectorEnv: the step has no outcome, the
        # episode ends at its last real observation (SequenceReplay.add's ``crashed``) and is not logged
        crashed = _env_restarted(infos, self.n_envs)
        ended = done & ~crashed
        final = None
        if ended.any():
            if "final_obs" not in infos:
                raise RuntimeError("the vector env ended an episode without infos['final_obs']: tracerl needs "
                                   "SAME_STEP autoreset (see tracerl.envs.make_vec_env)")
            idx = np.flatnonzero(ended)
            final = np.zeros((self.n_envs, self.obs.shape[-1]), np.float32)
            final[idx] = self.flat(_index_obs(infos["final_obs"], idx)).cpu().numpy()
        stored_action, stored_reward = carry.masked_inputs()
        self.replay.add(
            obs=self.obs.cpu().numpy(), state=stored, episode_start=start.cpu().numpy(),
            prev_action=stored_action.cpu().numpy(), prev_reward=stored_reward.cpu().numpy(),
            action=action.cpu().numpy(), reward=reward, terminated=terminated, truncated=truncated, final_obs=final,
            crashed=crashed if crashed.any() else None)
        self.total_steps += self.n_envs
        self.stats.step(reward.astype(np.float64), done, _final_info_success(infos, self.n_envs), dropped=crashed)
        self.obs = self.flat(next_obs)
        self.last_step = (reward, done, self.obs)  # raw rewards, episode ends, next observations (reward statistics)
        self.carry = carry.advance(new_states, action, torch.as_tensor(reward, device=self.device),
                                   torch.as_tensor(done, device=self.device))

    # -- checkpoint support -------------------------------------------------------------------------
    def carry_tensors(self) -> dict[str, Tensor]:
        assert self.obs is not None
        return {"obs": self.obs, **self.carry.tensors()}

    def load_carry(self, tensors: Mapping[str, Tensor]) -> None:
        self.obs = tensors["obs"].to(self.device)
        self.carry = Carry.from_tensors(tensors, list(self.algorithm.torsos()), self.device)


def replay_state_spec(torsos: Mapping[str, RecurrentTorso]) -> dict[str, TensorSpec]:
    """The replay's state spec: every torso's core spec under ``torso_name.entry``."""
    return {f"{m}.{k}": spec for m, t in torsos.items() for k, spec in t.core.state_spec().items()}


__all__ = ["OffPolicyCollector", "OffPolicyConfig", "actor_mask", "batch_state", "clip_and_step",
           "config_field_docs", "replay_state_spec", "unroll", "unroll_target"]
