"""On-policy rollouts of sequences: storage ``[T, B]`` and the collector that fills it.

The collector steps a SAME_STEP-autoreset vector env with a recurrent policy, records
``episode_start`` for every step and the memory state at the start of every BPTT chunk, and folds
``γ V(final observation)`` into the reward of truncated steps (bootstrap on truncation only).
With ``whole_episodes=True`` (REINFORCE) it also hands out, with every rollout, the episodes that have ended,
holding back the steps of running ones (:class:`~tracerl.data.episodes.EpisodeStore`).
"""

from __future__ import annotations

import warnings
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from ..envs.output_check import check_batch
from ..errors import NonFiniteError
from .episodes import EpisodeStore, rollout_steps
from .leaves import stack_leaves
from ..memory import State
from ..policies.carry import ACTING, Carry
from ..policies.policy import RecurrentActorCritic


@dataclass
class RolloutBuffer:
    """Time-major storage for one rollout of ``T`` steps from ``B`` envs.

    ``chunk_states[name]`` is ``[C, B, ...]``: the memory state at steps ``0, L, 2L, ...``, where
    ``L = chunk_len`` and ``C = ceil(T / L)``, stored by the carry's convention
    (:meth:`~tracerl.policies.carry.Carry.stored_states`: that step's episode starts applied).
    """

    obs: Tensor  # [T, B, obs_dim]
    episode_start: Tensor  # [T, B] bool
    prev_action: Tensor  # [T, B, *action_shape]
    prev_reward: Tensor  # [T, B]
    action: Tensor  # [T, B, *action_shape]
    log_prob: Tensor  # [T, B]
    value: Tensor  # [T, B]
    reward: Tensor  # [T, B], truncation bootstrap folded in
    done: Tensor  # [T, B] bool: the episode ended at this step
    chunk_len: int
    chunk_states: dict[str, Tensor] = field(default_factory=dict)
    env_reward: Tensor | None = None  # [T, B] the env's reward (before normalization and bootstrap)
    replay: dict[str, Tensor] = field(default_factory=dict)  # [T, B, ...] the core's recorded decisions
    info: dict[str, Tensor] = field(default_factory=dict)  # [T, B] infos[key] of each step's episode
    value_int: Tensor | None = None  # [T, B] intrinsic value (RND)
    reward_int: Tensor | None = None  # [T, B] normalized intrinsic reward (RND)
    last_value: Tensor | None = None  # [B]
    last_value_int: Tensor | None = None  # [B]
    advantage: Tensor | None = None  # [T, B]
    returns: Tensor | None = None  # [T, B]
    returns_int: Tensor | None = None  # [T, B]
    valid: Tensor | None = None  # [T, B] 1, or 0 for the steps of an episode that ended in an env crash
    # whole_episodes collectors: the episodes that ended by this rollout, [L, B, ...] (EpisodeStore.take)
    episodes: dict[str, Tensor] | None = None

    @classmethod
    def allocate(
        cls, policy: RecurrentActorCritic, n_steps: int, n_envs: int, chunk_len: int, device: torch.device,
        info_keys: tuple[str, ...] = (), intrinsic: bool = False,
    ) -> "RolloutBuffer":
        T, B = n_steps, n_envs
        a_shape, a_dtype = policy.action_shape, policy.action_dtype
        n_chunks = -(-T // chunk_len)
        spec = policy.core.state_spec()
        return cls(
            obs=torch.zeros(T, B, policy.obs_dim, device=device),
            episode_start=torch.zeros(T, B, dtype=torch.bool, device=device),
            prev_action=torch.zeros(T, B, *a_shape, dtype=a_dtype, device=device),
            prev_reward=torch.zeros(T, B, device=device),
            action=torch.zeros(T, B, *a_shape, dtype=a_dtype, device=device),
            log_prob=torch.zeros(T, B, device=device),
            value=torch.zeros(T, B, device=device),
            reward=torch.zeros(T, B, device=device),
            done=torch.zeros(T, B, dtype=torch.bool, device=device),
            chunk_len=chunk_len,
            chunk_states={
                k: torch.zeros(n_chunks, B, *s.shape, dtype=s.dtype, device=device) for k, s in spec.items()
            },
            env_reward=torch.zeros(T, B, device=device),
            replay={k: torch.zeros(T, B, *s.shape, dtype=s.dtype, device=device)
                    for k, s in policy.core.replay_spec().items()},
            info={k: torch.zeros(T, B, device=device) for k in info_keys},
            value_int=torch.zeros(T, B, device=device) if intrinsic else None,
            reward_int=torch.zeros(T, B, device=device) if intrinsic else None,
            valid=torch.ones(T, B, device=device),
        )

    @property
    def n_steps(self) -> int:
        return int(self.obs.shape[0])

    @property
    def n_envs(self) -> int:
        return int(self.obs.shape[1])


class EpisodeStats:
    """Returns, lengths and (when the env reports ``info["success"]``) successes of finished episodes."""

    def __init__(self, n_envs: int, window: int = 100) -> None:
        self.returns: deque[float] = deque(maxlen=window)
        self.lengths: deque[int] = deque(maxlen=window)
        self.successes: deque[float] = deque(maxlen=window)
        self.running_return = np.zeros(n_envs, dtype=np.float64)
        self.running_length = np.zeros(n_envs, dtype=np.int64)
        self.episodes = 0

    def step(self, reward: np.ndarray, done: np.ndarray, success: np.ndarray | None,
             dropped: np.ndarray | None = None) -> None:
        """``dropped`` rows (crashed envs) end their episode without recording it."""
        self.running_return += reward
        self.running_length += 1
        if dropped is not None and dropped.any():
            done = done & ~dropped
            self.running_return[dropped] = 0.0
            self.running_length[dropped] = 0
        for i in np.flatnonzero(done):
            self.returns.append(float(self.running_return[i]))
            self.lengths.append(int(self.running_length[i]))
            if success is not None and not np.isnan(success[i]):
                self.successes.append(float(success[i]))
            self.episodes += 1
        self.running_return[done] = 0.0
        self.running_length[done] = 0

    def add_finished(self, records: Iterable[tuple[int, int, float, int, float]]) -> None:
        """Episodes finished elsewhere (env runners): ``(step, global env index, return, length, success or NaN)``
        records, taken in the order one process would have seen them (by step, then by env index)."""
        for _, _, ret, length, success in sorted(records, key=lambda r: (r[0], r[1])):
            self.returns.append(ret)
            self.lengths.append(length)
            if not np.isnan(success):
                self.successes.append(success)
            self.episodes += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "returns": list(self.returns),
            "lengths": list(self.lengths),
            "successes": list(self.successes),
            "running_return": self.running_return.tolist(),
            "running_length": self.running_length.tolist(),
            "episodes": self.episodes,
        }

    def load_json(self, d: dict[str, Any]) -> None:
        self.returns.clear(), self.returns.extend(d["returns"])
        self.lengths.clear(), self.lengths.extend(d["lengths"])
        self.successes.clear(), self.successes.extend(d["successes"])
        self.running_return = np.asarray(d["running_return"], dtype=np.float64)
        self.running_length = np.asarray(d["running_length"], dtype=np.int64)
        self.episodes = int(d["episodes"])


def _only_integer_leaves(space: gym.Space) -> bool:
    """Whether every leaf of ``space`` is ``Discrete`` or ``MultiDiscrete`` (encoded as one-hots, never NaN/inf)."""
    if isinstance(space, gym.spaces.Tuple):
        return all(_only_integer_leaves(s) for s in space.spaces)
    if isinstance(space, gym.spaces.Dict):
        return all(_only_integer_leaves(s) for s in space.spaces.values())
    return isinstance(space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete))


def _env_restarted(infos: dict[str, Any], n: int) -> np.ndarray:
    """Rows whose sub-env crashed and was rebuilt this step (``infos["env_restarted"]``, see
    :class:`tracerl.envs.resilient.ResilientVectorEnv`); their episode ends without being learned from."""
    if "env_restarted" not in infos:
        return np.zeros(n, dtype=bool)
    return np.asarray(infos["env_restarted"], dtype=bool) & np.asarray(infos.get("_env_restarted", True), dtype=bool)


def _final_info_success(infos: dict[str, Any], n: int) -> np.ndarray | None:
    """Per-env ``success`` of episodes that ended this step (NaN where unknown), or None."""
    final = infos.get("final_info")
    if not isinstance(final, dict) or "success" not in final:
        return None
    mask = final.get("_success", np.ones(n, dtype=bool))
    out = np.full(n, np.nan)
    out[mask] = np.asarray(final["success"], dtype=np.float64)[mask]
    return out


class RolloutCollector:
    """Steps ``env`` with ``policy`` and fills :class:`RolloutBuffer` objects.

    Carries across rollouts the current observation and a :class:`~tracerl.policies.carry.Carry` (the memory
    state, the previous action and reward, and which envs start an episode at the next step).
    ``carry_tensors`` / ``load_carry`` expose them for checkpoints so that a resumed run continues exactly.
    """

    def __init__(
        self,
        env: gym.vector.VectorEnv,
        policy: RecurrentActorCritic,
        gamma: float,
        device: torch.device,
        nan_policy: str = "raise",
        bootstrap_on_truncation: bool = True,
        info_keys: tuple[str, ...] = (),
        reward_normalizer: Any = None,
        rnd: Any = None,
        whole_episodes: bool = False,
        max_episode_steps: int = 100_000,
    ) -> None:
        """``whole_episodes``: hand out whole episodes with every rollout (``buf.episodes``), holding back the
        steps of running episodes (at most ``max_episode_steps`` per env) in the carry (REINFORCE)."""
        self.env = env
        self.policy = policy
        self.gamma = gamma
        self.device = device
        if nan_policy not in ("raise", "warn"):
            raise ValueError(f"nan_policy={nan_policy!r} is invalid: must be 'raise' or 'warn'")
        self.nan_policy = nan_policy
        self.bootstrap_on_truncation = bootstrap_on_truncation
        self.info_keys = tuple(info_keys)
        self.reward_normalizer = reward_normalizer
        self.rnd = rnd
        self.rnd_bonus_sum = 0.0  # raw RND prediction error summed over the last rollout (for logging)
        self.n_envs = env.num_envs
        self._one_hot_obs = _only_integer_leaves(env.single_observation_space)
        self.stats = EpisodeStats(self.n_envs)
        self.total_steps = 0
        self.obs: Tensor | None = None
        self.episodes = EpisodeStore(self.n_envs, max_episode_steps) if whole_episodes else None

    def reset(self, seed: int | None = None) -> None:
        """Reset the envs and the carried state (memory, previous action/reward)."""
        obs, infos = self.env.reset(seed=seed)
        check_batch(self.env.single_observation_space, self.n_envs, obs, np.zeros(self.n_envs), np.zeros(self.n_envs),
                    np.zeros(self.n_envs))
        self.obs = self._check_obs(self.policy.preprocess(obs, self.device), None, obs)
        self.info = {k: self._info_values(infos, k) for k in self.info_keys}
        B = self.n_envs
        self.carry = Carry.initial({ACTING: self.policy}, B, self.policy.action_shape, self.policy.action_dtype,
                                   self.device)
        self.stats = EpisodeStats(B)
        if self.episodes is not None:
            self.episodes.clear()

    # -- checkpoint support -----------------------------------------------------------------------
    def carry_tensors(self) -> dict[str, Tensor]:
        assert self.obs is not None, "collector not reset"
        out = {"obs": self.obs, **self.carry.tensors(single=ACTING)}
        out.update({f"info.{k}": v for k, v in self.info.items()})
        if self.episodes is not None:
            out.update({f"episodes.{k}": v for k, v in self.episodes.carry_tensors().items()})
        return out

    def load_carry(self, tensors: dict[str, Tensor]) -> None:
        self.obs = tensors["obs"].to(self.device)
        self.carry = Carry.from_tensors(tensors, [ACTING], self.device, single=ACTING)
        self.info = {k: tensors[f"info.{k}"].to(self.device) if f"info.{k}" in tensors
                     else torch.zeros(self.n_envs, device=self.device) for k in self.info_keys}
        if self.episodes is not None:
            held = {k[len("episodes."):]: v for k, v in tensors.items() if k.startswith("episodes.")}
            if held:
                self.episodes.load_carry(held, self.device)
            else:  # a checkpoint without held-back steps: the running episodes' first steps are lost
                self.episodes.lose_heads()

    def _info_values(self, infos: dict[str, Any], key: str) -> Tensor:
        """``infos[key]`` as a float tensor ``[B]`` (0 where an env did not report it)."""
        if key not in infos:
            raise KeyError(f"an auxiliary module needs infos[{key!r}], which this env does not report "
                           f"(it reports: {', '.join(k for k in infos if not k.startswith('_')) or 'nothing'})")
        values = np.asarray(infos[key], dtype=np.float64)
        present = np.asarray(infos.get(f"_{key}", np.ones(self.n_envs, dtype=bool)), dtype=bool)
        return torch.as_tensor(np.where(present, values, 0.0), dtype=torch.float32, device=self.device)

    # -- guards -----------------------------------------------------------------------------------
    def _nonfinite(self, what: str, bad: list[int], last_action: Any) -> None:
        """Raise (or warn, with nan_policy='warn') about non-finite data from the envs in ``bad``."""
        actions = None if last_action is None else np.asarray(last_action)[bad].tolist()
        msg = (f"non-finite {what} from env index {bad} at step {self.total_steps // self.n_envs} "
               f"(last action: {actions})")
        if self.nan_policy == "raise":
            raise NonFiniteError(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=4)

    def _check_obs(self, obs: Tensor, last_action: Any, raw: Any = None) -> Tensor:
        if self._one_hot_obs:  # one-hots of in-range integers (preprocess checks the range): always finite
            return obs
        finite = torch.isfinite(obs)
        if not bool(finite.all()):
            keys = "" if raw is None else " at " + ", ".join(nonfinite_paths(raw))
            self._nonfinite(f"observation{keys}", torch.nonzero(~finite.all(dim=-1)).flatten().tolist(), last_action)
            obs = torch.nan_to_num(obs, nan=0.0, posinf=0.0, neginf=0.0)
        return obs

    def _check_reward(self, reward: np.ndarray, action: Any) -> np.ndarray:
        finite = np.isfinite(reward)
        if not finite.all():
            bad = np.flatnonzero(~finite).tolist()
            self._nonfinite(f"reward {reward[bad].tolist()}", bad, action)
            reward = np.nan_to_num(reward, nan=0.0, posinf=0.0, neginf=0.0)
        return reward

    # -- collection -------------------------------------------------------------------------------
    @torch.no_grad()
    def collect(self, buf: RolloutBuffer) -> None:
        """Fill ``buf`` with ``buf.n_steps`` steps from every env, then its ``last_value``."""
        if self.obs is None:
            raise RuntimeError("RolloutCollector.reset() must be called before collect()")
        policy, L = self.policy, buf.chunk_len
        self.rnd_bonus_sum = 0.0
        if buf.valid is None:
            buf.valid = torch.ones(buf.n_steps, buf.n_envs, device=self.device)
        buf.valid.fill_(1.0)
        episode_t0 = np.zeros(self.n_envs, dtype=np.int64)  # where each env's current episode starts in buf
        cores = {ACTING: policy.core}
        for t in range(buf.n_steps):
            carry = self.carry
            if t % L == 0:
                for k, v in carry.stored_states(cores)[ACTING].items():
                    buf.chunk_states[k][t // L] = v
            buf.obs[t] = self.obs
            buf.episode_start[t] = carry.episode_start
            episode_t0[carry.episode_start.cpu().numpy()] = t
            buf.prev_action[t] = carry.prev_action
            buf.prev_reward[t] = carry.prev_reward
            for k, v in self.info.items():
                buf.info[k][t] = v
            out = policy.forward_full(self.obs[None], *carry.step_inputs())
            dist = out.dist
            for k in buf.replay:
                buf.replay[k][t] = out.trace[k][0]
            action = dist.sample()[0]
            buf.action[t] = action
            buf.log_prob[t] = dist.log_prob(action[None])[0]
            buf.value[t] = out.value[0]
            if buf.value_int is not None and out.value_int is not None:
                buf.value_int[t] = out.value_int[0]
            env_action = policy.actor.to_env(action)
            next_obs, reward, terminated, truncated, infos = self.env.step(env_action)
            check_batch(self.env.single_observation_space, self.n_envs, next_obs, reward, terminated, truncated)
            reward = self._check_reward(np.asarray(reward, dtype=np.float64), env_action)
            terminated = np.asarray(terminated, dtype=bool)
            truncated = np.asarray(truncated, dtype=bool)
            done = terminated | truncated
            self.total_steps += self.n_envs
            crashed = _env_restarted(infos, self.n_envs)  # ResilientVectorEnv rebuilt these: drop the episode
            self.stats.step(reward, done, _final_info_success(infos, self.n_envs), dropped=crashed)
            env_reward = torch.as_tensor(reward, dtype=torch.float32, device=self.device)
            done_t = torch.as_tensor(done, device=self.device)
            buf.env_reward[t] = env_reward
            train_reward = env_reward if self.reward_normalizer is None else self.reward_normalizer(env_reward, done_t)
            only_truncated = truncated & ~terminated & ~crashed
            if self.bootstrap_on_truncation and only_truncated.any():
                bootstrap = self._final_values(infos, only_truncated, out.state, action, env_reward)
                buf.reward[t] = train_reward + self.gamma * bootstrap
            else:
                buf.reward[t] = train_reward
            buf.done[t] = done_t
            for i in np.flatnonzero(crashed):
                buf.valid[episode_t0[i] : t + 1, i] = 0.0
            self.obs = self._check_obs(policy.preprocess(next_obs, self.device), env_action, next_obs)
            if self.rnd is not None:
                bonus, raw_bonus = self.rnd.intrinsic_reward(self.obs)
                self.rnd_bonus_sum += float(raw_bonus.sum())
                if buf.reward_int is not None:
                    buf.reward_int[t] = bonus
            self.info = {k: self._info_values(infos, k) for k in self.info_keys}
            self.carry = carry.advance({ACTING: out.state}, action, env_reward, done_t)
        out = policy.forward_full(self.obs[None], *self.carry.step_inputs())
        buf.last_value = out.value[0]
        if out.value_int is not None:
            buf.last_value_int = out.value_int[0]
        if self.episodes is not None:
            buf.episodes = self.episodes.take(rollout_steps(buf))

    def _final_values(self, infos: dict[str, Any], rows: np.ndarray, state: State, action: Tensor,
                      reward: Tensor) -> Tensor:
        """V(final observation) for the envs in ``rows`` (0 elsewhere), continuing their memory from ``state`` (the
        state after the step that ended them)."""
        if "final_obs" not in infos:
            raise RuntimeError(
                "the vector env reported a truncation without infos['final_obs']: tracerl needs "
                "SAME_STEP autoreset (see tracerl.envs.make_vec_env)"
            )
        idx = np.flatnonzero(rows)
        final_obs = infos["final_obs"]
        sub = _index_obs(final_obs, idx)
        obs = self._check_obs(self.policy.preprocess(sub, self.device), None, sub)
        it = torch.as_tensor(idx, device=self.device)
        state = {k: v[it] for k, v in state.items()}
        start = torch.zeros(1, len(idx), dtype=torch.bool, device=self.device)
        _, v, _ = self.policy(obs[None], state, start, action[it][None], reward[it][None])
        out = torch.zeros(self.n_envs, device=self.device)
        out[it] = v[0]
        return out


def nonfinite_paths(obs: Any, path: str = "obs") -> list[str]:
    """Paths (``obs['key'][0]``) of the leaves of a batched observation that hold NaN or inf."""
    if isinstance(obs, dict):
        return [p for k, v in obs.items() for p in nonfinite_paths(v, f"{path}[{k!r}]")]
    if isinstance(obs, tuple):
        return [p for i, v in enumerate(obs) for p in nonfinite_paths(v, f"{path}[{i}]")]
    arr = np.asarray(obs)
    if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
        return [path]
    return []


def _index_obs(obs: Any, idx: np.ndarray) -> Any:
    """Select env rows from a batched observation (arrays, dicts, tuples, or object arrays of them)."""
    if isinstance(obs, dict):
        return {k: _index_obs(v, idx) for k, v in obs.items()}
    if isinstance(obs, tuple):
        return tuple(_index_obs(v, idx) for v in obs)
    arr = np.asarray(obs)
    if arr.dtype == object:
        return stack_leaves(list(arr[idx]))
    return arr[idx]


