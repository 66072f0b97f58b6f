"""Neural Episodic Control (Pritzel et al. 2017): ``algo="nec"``, and the learner episodic control shares with MFEC.

NEC acts on ``Q(h_t, a)`` read from a Differentiable Neural Dictionary per action (:class:`~tracerl.algos.dnd.DND`),
where the key ``h_t`` is the output of the memory torso (encoder -> any tracerl memory core). With
``memory="mlp"`` the key depends on the current observation only: the paper's NEC. With a recurrent core the key
summarizes the history, so episodic control works on POMDPs::

    TraceRL(env="tracerl/CueDelay-v0", env_kwargs={"delay": 8}, algo="nec", memory="gru", seed=0).learn(20_000)

Acting and writing (each actor ``b`` keeps a queue of its last ``N = n_step`` keys, actions and rewards)::

    a_t      = argmax_a Q(h_t, a) (ties at random), uniform with probability epsilon
    Q^N(t)   = sum_{j=0}^{m-1} gamma^j r_{t+j} + gamma^m max_a Q(h_{t+m}, a)     m = min(N, steps left)
    write (h_t, a_t, Q^N(t)) into DND_a as soon as it is known: N steps later, or at the episode's end
    (no bootstrap after termination; a truncated episode bootstraps on the key of its final observation)

Learning: windows of the sequence replay (R2D2's: the memory state is stored with the rows, so a window is
replayed from the state the core had when it was collected; ``burn_in`` warms it) give the keys ``h_t`` with
gradient; the targets are the same N-step returns recomputed with the current embedding and DND (no target
network, as the paper), and ``L = mean_t 1/2 (Q(h_t, a_t) - Q^N(t))^2`` trains the embedding (Adam,
``learning_rate``) and the DND's neighbouring keys and values (SGD, ``dnd_learning_rate``).

Differences from the paper: writes are the lagged N-step writes above (the paper appends at the same lag);
the replay holds windows of rows and recomputes the N-step targets at update time instead of storing them;
the DND's entries are trained by plain SGD on the touched rows (the paper uses RMSProp for everything);
epsilon is constant (the paper anneals it); the exact kNN search is batched in torch (the paper uses a kd-tree).

Discrete action spaces only (ConfigError otherwise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from ..config_checks import NON_NEGATIVE, POSITIVE, Range
from ..data.replay import SequenceBatch
from ..data.rollout import _index_obs
from ..errors import CheckpointError, ConfigError
from ..io import restore_checks
from ..io.restore_checks import check_tensor_like
from ..policies.policy import PolicyConfig
from .dnd import DND, DNDState, dnd_bytes
from .offpolicy import OffPolicyConfig, batch_state, clip_and_step, unroll
from .offpolicy_learner import OffPolicyLearner, _ParamGroupNames
from .recurrent_nets import ActionCodec, RecurrentTorso
from .targets import masked_mean, nstep_targets


@dataclass
class NECConfig(OffPolicyConfig):
    """Hyperparameters of NEC (OffPolicyConfig's replay and schedule fields plus these; ``tau``,
    ``target_update_interval`` and ``head_hidden`` are not used: NEC has no target network and no Q head)."""

    n_step: int = 5
    """N of the N-step Q targets (written into the DND and trained on)."""
    dnd_capacity: int = 10_000
    """Entries per action's dictionary; the least recently used one is replaced when it is full."""
    num_neighbours: int = 50
    """p: nearest neighbours per lookup."""
    kernel_delta: float = 1e-3
    """delta of the kernel 1 / (||h - h_i||^2 + delta)."""
    dnd_alpha: float = 0.1
    """Tabular learning rate of a write to an existing key: Q_i += alpha (Q^N - Q_i)."""
    match_threshold: float = 1e-6
    """A written key within this squared distance of a stored key of the same action updates it (else appended)."""
    dnd_learning_rate: float = 1e-2
    """SGD step size of the gradient on the neighbours' keys and values (0: the DND changes only by writes)."""
    epsilon: float = 0.1
    """Probability of a uniform action of the training actors (and of predict(deterministic=False))."""
    learning_starts: int = 500
    """Env steps before the first gradient step (NEC acts with its DND and writes into it from the first step)."""

    _field_ranges = {
        "n_step": Range(1, 10_000), "dnd_capacity": Range(1, 10**7), "num_neighbours": Range(1, 10_000),
        "kernel_delta": POSITIVE, "dnd_alpha": Range(0, 1, lo_open=True), "match_threshold": NON_NEGATIVE,
        "dnd_learning_rate": NON_NEGATIVE, "epsilon": Range(0, 1),
    }

    @property
    def lookahead(self) -> int:
        return self.n_step


def episode_returns(rewards: Tensor, bootstrap: float, gamma: float) -> Tensor:
    """``G_i = sum_{j >= i} gamma^(j - i) r_j + gamma^(L - i) bootstrap`` for ``rewards [L]`` -> ``[L]`` (float64
    accumulation, returned as float32)."""
    out = torch.empty(rewards.shape[0], dtype=torch.float64)
    g = float(bootstrap)
    for i in range(rewards.shape[0] - 1, -1, -1):
        g = float(rewards[i]) + gamma * g
        out[i] = g
    return out.to(torch.float32)


class PendingWrites:
    """Per actor, the keys, actions and rewards of the steps whose return is not known yet (oldest first)."""

    def __init__(self, n_envs: int = 0) -> None:
        self.clear(n_envs)

    def clear(self, n_envs: int) -> None:
        """Forget every pending step (fresh episodes) for ``n_envs`` actors."""
        self.keys: list[list[Tensor]] = [[] for _ in range(n_envs)]
        self.actions: list[list[int]] = [[] for _ in range(n_envs)]
        self.rewards: list[list[float]] = [[] for _ in range(n_envs)]

    @property
    def n_envs(self) -> int:
        return len(self.keys)

    def __len__(self) -> int:
        return sum(len(k) for k in self.keys)

    def push(self, keys: Tensor, actions: Tensor) -> None:
        """One step of every actor: ``keys [B, D]``, ``actions [B]`` (their rewards come with :meth:`reward`)."""
        if keys.shape[0] != self.n_envs:
            self.clear(keys.shape[0])
        keys = keys.detach().to("cpu", torch.float32)
        for b, a in enumerate(actions.tolist()):
            self.keys[b].append(keys[b].clone())
            self.actions[b].append(int(a))
            self.rewards[b].append(math.nan)

    def reward(self, rewards: np.ndarray) -> None:
        """The rewards ``[B]`` of the steps pushed last."""
        for b in range(self.n_envs):
            if self.rewards[b]:
                self.rewards[b][-1] = float(rewards[b])

    def pop(self, b: int, count: int) -> tuple[list[Tensor], list[int], list[float]]:
        """Remove and return actor ``b``'s ``count`` oldest steps."""
        out = self.keys[b][:count], self.actions[b][:count], self.rewards[b][:count]
        del self.keys[b][:count], self.actions[b][:count], self.rewards[b][:count]
        return out


class PendingState:
    """:class:`PendingWrites` as a checkpoint component: ``episodic.keys [S, D]``, ``episodic.actions [S]``,
    ``episodic.rewards [S]`` (all actors' pending steps in order) and ``episodic.lengths [B]``."""

    prefixes = ("episodic.",)

    def __init__(self, algorithm: Any) -> None:
        self.algorithm = algorithm

    def save(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        p: PendingWrites = self.algorithm.pending
        D = self.algorithm.key_dim
        keys = [k for ks in p.keys for k in ks]
        tensors["episodic.keys"] = torch.stack(keys) if keys else torch.zeros(0, D)
        tensors["episodic.actions"] = torch.tensor([a for acts in p.actions for a in acts], dtype=torch.int64)
        tensors["episodic.rewards"] = torch.tensor([r for rs in p.rewards for r in rs], dtype=torch.float32)
        tensors["episodic.lengths"] = torch.tensor([len(ks) for ks in p.keys], dtype=torch.int64)

    def check(self, tensors: Any, meta: Any, where: str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        alg = self.algorithm
        lengths = tensors.get("episodic.lengths")
        if not isinstance(lengths, Tensor) or lengths.dim() != 1:
            raise CheckpointError("missing or not a vector", path=where, entry="episodic.lengths")
        horizon = alg.horizon if alg.horizon is not None else None
        lengths = check_tensor_like(lengths, lengths.shape, torch.int64, where, "episodic.lengths", low=0,
                                    high=horizon)
        total = int(lengths.sum())
        keys = check_tensor_like(tensors.get("episodic.keys"), (total, alg.key_dim), torch.float32, where,
                                 "episodic.keys", finite=True)
        actions = check_tensor_like(tensors.get("episodic.actions"), (total,), torch.int64, where, "episodic.actions",
                                    low=0, high=alg.codec.n - 1)
        rewards = check_tensor_like(tensors.get("episodic.rewards"), (total,), torch.float32, where,
                                    "episodic.rewards", finite=True)
        return keys, actions, rewards, lengths

    def load(self, staged: tuple[Tensor, Tensor, Tensor, Tensor], where: str) -> None:
        keys, actions, rewards, lengths = staged
        p: PendingWrites = self.algorithm.pending
        p.clear(lengths.shape[0])
        start = 0
        for b, n in enumerate(lengths.tolist()):
            p.keys[b] = [keys[i].clone() for i in range(start, start + n)]
            p.actions[b] = actions[start:start + n].tolist()
            p.rewards[b] = rewards[start:start + n].tolist()
            start += n


class EpisodicControl:
    """What NEC and MFEC share: a memory torso whose output gives the keys, one DND per action, epsilon-greedy
    acting on the DND's Q with pending writes, and :meth:`observe` after every env step."""

    name = "episodic"
    trains_retention = False
    gradient_updates: ClassVar[bool] = False
    """Whether the learner samples the replay and calls :meth:`update`."""
    horizon: int | None = None
    """Steps before a pending step is written with a bootstrap (None: at the episode's end, Monte Carlo)."""

    def __init__(self, obs_dim: int, codec: ActionCodec, config: Any, policy_config: PolicyConfig,
                 memory_factory: Any = None, input_index: list[int] | None = None,
                 device: torch.device | str = "cpu", observation_space: gym.Space | None = None) -> None:
        if not codec.discrete:
            raise ConfigError(f"algo={self.name!r} acts in Discrete action spaces only (one DND per action), got "
                              f"{codec.space!r}; use algo='sac' or 'td3' for Box actions")
        config.validate()
        self.config, self.codec, self.device = config, codec, torch.device(device)
        core = memory_factory() if memory_factory is not None else None
        self.torso = RecurrentTorso(obs_dim, codec, policy_config, core, input_index,
                                    observation_space).to(self.device)
        self.n_updates = 0
        self.pending = PendingWrites(config.n_envs)
        self.rng = torch.Generator().manual_seed(int(torch.randint(0, 2**62, ()).item()))
        """The actors' exploration draws, seeded from torch's current generator (the agent's training stream)."""

    # the DND and key_dim are set by the subclasses
    dnd: DND
    key_dim: int

    def keys(self, features: Tensor) -> Tensor:
        """The DND keys of torso features ``[..., H]`` -> ``[..., key_dim]``."""
        return features

    def torsos(self) -> dict[str, RecurrentTorso]:
        return {"q": self.torso}

    def acting_torso(self) -> str:
        return "q"

    def clear_pending(self, n_envs: int) -> None:
        """New episodes in every env (a reset): nothing is pending."""
        self.pending.clear(n_envs)

    @torch.no_grad()
    def act(self, features: dict[str, Tensor], explore: bool = True, obs: Tensor | None = None,
            episode_start: Tensor | None = None, record: bool = True) -> Tensor:
        """Actions ``[B]`` for torso features ``{"q": [B, H]}``. The training actors (``record=True``) refresh the
        neighbours' ages, write the pending steps whose horizon is reached (bootstrapping on this step's
        ``max_a Q``), break ties at random and queue this step; ``record=False`` (predict) leaves all of that
        alone, exploring with the base epsilon from torch's current generator; ``explore=False`` is greedy."""
        keys = self.keys(features["q"])
        q = self.dnd.q_values(keys, refresh=explore and record)
        if not explore:
            return q.argmax(-1)
        B, A = q.shape
        eps = float(self.config.epsilon)
        if not record:
            rand = torch.rand(B) < eps
            return torch.where(rand.to(q.device), torch.randint(0, A, (B,)).to(q.device), q.argmax(-1))
        if self.horizon is not None:
            self._write_due(q.max(-1).values.cpu())
        ties = torch.rand(B, A, generator=self.rng).to(q.device)
        greedy = torch.where(q == q.max(-1, keepdim=True).values, ties, torch.full_like(ties, -1.0)).argmax(-1)
        rand = torch.rand(B, generator=self.rng) < eps
        uniform = torch.randint(0, A, (B,), generator=self.rng)
        action = torch.where(rand.to(q.device), uniform.to(q.device), greedy)
        self.pending.push(keys, action)
        return action

    def _write_due(self, boot: Tensor) -> None:
        """Write the oldest pending step of every actor whose queue holds ``horizon`` steps (bootstrap ``boot [B]``)."""
        assert self.horizon is not None
        keys, actions, returns = [], [], []
        for b in range(self.pending.n_envs):
            if len(self.pending.keys[b]) >= self.horizon:
                ks, acts, rs = self.pending.pop(b, 1)
                # the oldest step's N-step return over the N rewards queued after it
                rewards = torch.tensor([rs[0]] + self.pending.rewards[b][:self.horizon - 1])
                keys.append(ks[0])
                actions.append(acts[0])
                returns.append(episode_returns(rewards, float(boot[b]), self.config.gamma)[0])
        if keys:
            self.dnd.write(torch.stack(keys).to(self.device), torch.tensor(actions), torch.stack(returns))

    @torch.no_grad()
    def observe(self, reward: np.ndarray, terminated: np.ndarray, truncated: np.ndarray,
                final_features: Tensor | None) -> None:
        """After an env step: the rewards ``[B]`` of the queued steps; an actor whose episode ended writes all its
        pending steps (bootstrap 0 after termination, ``max_a Q`` of the final observation's key
        ``final_features [B, H]`` after truncation)."""
        self.pending.reward(reward)
        done = np.asarray(terminated, bool) | np.asarray(truncated, bool)
        if not done.any():
            return
        boot = torch.zeros(len(done))
        trunc = np.flatnonzero(np.asarray(truncated, bool) & ~np.asarray(terminated, bool))
        if trunc.size:
            if final_features is None:
                raise ValueError(f"{type(self).__name__}.observe: truncated envs {trunc.tolist()} need final_features")
            q = self.dnd.q_values(self.keys(final_features[torch.as_tensor(trunc, device=final_features.device)]))
            boot[torch.as_tensor(trunc)] = q.max(-1).values.cpu()
        keys, actions, returns = [], [], []
        for b in np.flatnonzero(done).tolist():
            ks, acts, rs = self.pending.pop(b, len(self.pending.keys[b]))
            if not ks:
                continue
            keys += ks
            actions += acts
            returns.append(episode_returns(torch.tensor(rs), float(boot[b]), self.config.gamma))
        if keys:
            self.dnd.write(torch.stack(keys).to(self.device), torch.tensor(actions), torch.cat(returns))

    def extra_tensors(self) -> dict[str, Tensor]:
        return {"act_rng": self.rng.get_state()}


class NEC(EpisodicControl):
    """NEC's embedding (the memory torso), DNDs, optimizer and update (arguments as
    :class:`~tracerl.algos.r2d2.R2D2`)."""

    name = "nec"
    gradient_updates = True

    def __init__(self, obs_dim: int, codec: ActionCodec, config: NECConfig, policy_config: PolicyConfig,
                 memory_factory: Any = None, input_index: list[int] | None = None,
                 device: torch.device | str = "cpu", observation_space: gym.Space | None = None) -> None:
        super().__init__(obs_dim, codec, config, policy_config, memory_factory, input_index, device,
                         observation_space)
        self.key_dim = self.torso.output_dim
        self.horizon = config.n_step
        self.dnd = DND(codec.n, config.dnd_capacity, self.key_dim, config.num_neighbours, config.kernel_delta,
                       config.dnd_alpha, config.match_threshold, kernel="inverse", write_rule="alpha").to(self.device)
        self.opt = torch.optim.Adam(self.torso.parameters(), lr=config.learning_rate)

    @property
    def uses_stored_state(self) -> bool:
        """Windows are replayed from the state stored with them (R2D2's convention)."""
        return True

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"q_torso": self.torso}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"q": self.opt}

    def update(self, batch: SequenceBatch) -> tuple[dict[str, float], Tensor]:
        """One gradient step on replayed windows; statistics and ``|delta|`` ``[T', N]`` (for priorities)."""
        cfg, b = self.config, batch.burn_in
        h = unroll(self.torso, batch, batch_state(batch, "q"), True)
        T, N = h.shape[:2]
        q_all, handles = self.dnd.q_values_grad(h.reshape(T * N, -1))
        q_all = q_all.view(T, N, -1)
        with torch.no_grad():
            boot = q_all.detach().max(-1).values
            y, ok, _ = nstep_targets(batch.reward[b:], batch.has_action[b:], batch.valid[b:], boot,
                                     batch.terminal[b:], cfg.gamma, cfg.n_step)
        mask = batch.train[b:] & ok
        q = q_all.gather(-1, batch.action[b:].long().clamp(0, self.codec.n - 1).unsqueeze(-1)).squeeze(-1)
        delta = q - y
        loss = masked_mean(batch.weight.unsqueeze(0) * 0.5 * delta**2, mask)
        norm = 0.0
        if loss.requires_grad:  # an empty DND gives nothing to learn from
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            norm = clip_and_step(self.opt, list(self.torso.parameters()), cfg.max_grad_norm, "NEC")
            if cfg.dnd_learning_rate > 0:
                self.dnd.apply_gradients(handles, cfg.dnd_learning_rate)
        self.n_updates += 1
        stats = {"loss": float(loss.detach()), "q_mean": float(masked_mean(q.detach(), mask)), "grad_norm": norm,
                 "dnd_size": float(self.dnd.size.sum())}
        return stats, delta.detach().abs() * mask


# -- the learner -------------------------------------------------------------------------------------------------
class _StepRecorder:
    """The collector's env, remembering the last ``step`` result and clearing the pending writes on ``reset``."""

    def __init__(self, env: Any, on_reset: Any) -> None:
        self._env = env
        self._on_reset = on_reset
        self.last: tuple[Any, ...] | None = None

    def step(self, actions: Any) -> Any:
        self.last = self._env.step(actions)
        return self.last

    def reset(self, **kwargs: Any) -> Any:
        self._on_reset(self._env.num_envs)
        return self._env.reset(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)


class EpisodicLearner(OffPolicyLearner):
    """:class:`~tracerl.algos.offpolicy_learner.OffPolicyLearner` for episodic control (NEC, MFEC): the training
    actors always act with the DND (``learning_starts`` delays gradient steps only), every env step is followed by
    the algorithm's :meth:`~EpisodicControl.observe` (DND writes), an algorithm without gradient updates (MFEC)
    never samples the replay, and checkpoints hold the DNDs (``dnd.*``) and the pending writes (``episodic.*``).
    Its checkpoints carry the kind ``tracerl.EpisodicControl``."""

    checkpoint_kind: ClassVar[str] = "tracerl.EpisodicControl"

    def _build_replay(self, env: Any, seed: int | None) -> None:
        super()._build_replay(env, seed)
        assert self.collector is not None
        self.collector.env = _StepRecorder(self.collector.env, self.algorithm.clear_pending)

    random_warmup = False  # the DND policy acts (and writes) from the first step

    def _takes_gradient_steps(self) -> bool:
        return bool(self.algorithm.gradient_updates)

    @torch.no_grad()
    def _after_vector_step(self) -> None:
        """The DND writes that the last vector step's rewards and episode ends made due."""
        col = self.collector
        assert col is not None and isinstance(col.env, _StepRecorder) and col.env.last is not None
        _, reward, terminated, truncated, infos = col.env.last
        terminated, truncated = np.asarray(terminated, bool), np.asarray(truncated, bool)
        final_features = None
        trunc = np.flatnonzero(truncated & ~terminated)
        if trunc.size:
            final = torch.zeros(col.n_envs, self.obs_dim, device=self.device)
            final[torch.as_tensor(trunc, device=self.device)] = col.flat(_index_obs(infos["final_obs"], trunc))
            torso = self.algorithm.torsos()["q"]
            no_start = torch.zeros(1, col.n_envs, dtype=torch.bool, device=self.device)
            carry = col.carry  # advanced past the last step: its state, action and reward lead to the final obs
            h, _ = torso(final[None], carry.states["q"], no_start, carry.prev_action[None], carry.prev_reward[None])
            final_features = h[0]
        self.algorithm.observe(np.asarray(reward, np.float32), terminated, truncated, final_features)

    def components(self, agent: Any, include_replay: bool = True) -> list[Any]:
        """OffPolicyLearner's components (without the optimizer check when there is no optimizer: MFEC), the DNDs
        and the pending writes."""
        alg = self.algorithm
        out = [c for c in super().components(agent, include_replay)
               if alg.optimizers() or not isinstance(c, _ParamGroupNames)]
        return out[:-1] + [DNDState("dnd.", alg.dnd), PendingState(alg)] + out[-1:]

    def check_probe(self, where: str, tensors: dict[str, Tensor], state: Any) -> None:
        """OffPolicyLearner's checks, and the DND's size within the replay budget before it is allocated."""
        dnd = self.algorithm.dnd
        size = dnd_bytes(dnd.n_actions, dnd.capacity, dnd.key_dim)
        limit = restore_checks.LIMITS.max_replay_bytes
        if size > limit:
            raise CheckpointError(f"dnd_capacity={dnd.capacity} asks for DNDs of {size} bytes, more than the limit "
                                  f"{limit}", path=where, entry="meta.config.dnd_capacity")
        super().check_probe(where, tensors, state)


__all__ = ["EpisodicControl", "EpisodicLearner", "NEC", "NECConfig", "PendingState", "PendingWrites",
           "episode_returns"]
