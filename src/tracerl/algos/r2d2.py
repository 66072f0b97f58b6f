"""R2D2-style recurrent DQN (Kapturowski et al. 2019, "Recurrent Experience Replay in Distributed Reinforcement
Learning") for Discrete actions: stored state, burn-in, double Q, n-step returns, value rescaling, prioritized
sequence replay and per-actor epsilon-greedy exploration.

With ``h`` the online memory features and ``hbar`` the target network's (both replayed from the stored state of
the online network, the burn-in only warming them; with ``zero_initial_state`` from the core's initial state
instead, as DRQN does)::

    a*_{t+n}  = argmax_a Q(h_{t+n}, a)                                    (double Q; without it a* = argmax Qbar)
    y_t       = h( sum_{k=0}^{m-1} gamma^k r_{t+k} + gamma^m h^{-1}( Qbar(hbar_{t+m}, a*_{t+m}) ) )
                m = min(n, steps left in the episode); no bootstrap after termination
    h(x)      = sign(x) (sqrt(|x| + 1) - 1) + eps x,  h^{-1} its inverse   (value rescaling, eps = 1e-3)
    L         = mean_t w 1/2 (Q(h_t, a_t) - y_t)^2                        (masked over training steps)
    priority  = eta max_t |delta_t| + (1 - eta) mean_t |delta_t|
    epsilon_i = epsilon^(1 + alpha i / (N - 1))   for actor (env) i of N (Ape-X, Horgan et al. 2018)
    a ~ softmax(Q / temperature) instead of argmax when not epsilon-random (optional Boltzmann exploration)
    a = argmax_a Q(h_t, a) + c / sqrt(1 + N(phi(o_t), a))   (optional count-based UCB, see ``algos.counts``)

The target network is copied (``tau = 1``) every ``target_update_interval`` gradient steps.

DRQN (Hausknecht & Stone 2015) is this class configured by :class:`~tracerl.algos.drqn.DRQNConfig`
(``algo="drqn"``): zero initial state, no burn-in, one-step targets without rescaling or double Q.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym
import torch
from torch import Tensor, nn

from ..config_checks import NON_NEGATIVE, POSITIVE, POSITIVE_INT, UNIT, Range
from ..data.replay import SequenceBatch
from ..errors import ConfigError
from ..memory import MemoryCore, State
from ..policies import ActionCodec, DiscreteQ, RecurrentTorso
from ..policies.policy import PolicyConfig
from .counts import HashedActionCounts
from .offpolicy import OffPolicyConfig, batch_state, clip_and_step, unroll, unroll_target, unroll_traced
from .targets import RESCALE_EPS, inverse_value_rescale, masked_mean, nstep_targets, polyak_update, value_rescale


@dataclass
class R2D2Config(OffPolicyConfig):
    """Hyperparameters of R2D2 (fields of OffPolicyConfig plus these; some defaults differ)."""

    tau: float = 1.0
    """Polyak coefficient of the target network (1.0: hard copies, as R2D2)."""
    target_update_interval: int = 100
    """Gradient steps between target-network updates."""
    n_step: int = 5
    """Steps of the n-step return before bootstrapping."""
    value_rescaling: bool = True
    """Learn h(Q) with R2D2's invertible value rescaling h."""
    cut_at_exploration: bool = False
    """End each n-step return before the first later step whose replayed action is not the online network's
    greedy action, and bootstrap there (Watkins's Q(λ) cut; see :func:`~tracerl.algos.targets.nstep_targets`).
    Long n-step returns then measure the greedy policy, not the explorer: where one exploratory step ruins the
    rest of an episode (the Active T-Maze's schedule leaves no spare step after the detour to the cue), the
    plain return charges that ruin to the actions before it. False (default): R2D2's uncorrected returns."""
    double_q: bool = True
    """Double Q-learning: the online network picks the bootstrap action, the target network evaluates it
    (R2D2). False: plain DQN's ``max_a Qbar`` (DRQN)."""
    zero_initial_state: bool = False
    """Replay every window (its burn-in, if any, then its training steps; online and target networks alike) from
    the core's initial state (zeros for RNNs) instead of the state stored in the replay: DRQN's "bootstrapped
    random updates" (Hausknecht & Stone 2015; R2D2's "zero start state" strategy). The replay then stores no
    state, and ``state_stride`` only sets where windows may start (every ``state_stride``-th step of an
    episode). False (default): R2D2's stored state."""
    rescale_eps: float = RESCALE_EPS
    """Epsilon of the value rescaling."""
    epsilon: float = 0.4
    """Base exploration rate of the per-actor epsilon-greedy schedule."""
    epsilon_alpha: float = 7.0
    """Exponent spread of the per-actor schedule (env i explores with epsilon^(1 + alpha i / (N - 1)))."""
    runner_epsilon: Literal["env", "runner"] = "env"
    """With env runners (runners=N): 'env' gives sub-env g of all n_envs the rate epsilon^(1 + epsilon_alpha g /
    (n_envs - 1)), as in one process; 'runner' gives every sub-env of runner i of N the rate
    epsilon^(1 + epsilon_alpha i / (N - 1)) (Ape-X: one rate per actor; epsilon 0.4, epsilon_alpha 7)."""
    start_epsilon: float = 0.0
    """Exploration rate over the first ``start_epsilon_steps`` steps of every episode, where it is higher than
    the actor's epsilon (0: off). Information is often gathered at an episode's start (the Active T-Maze's cue
    is one step back from the start cell) while the rest of the episode needs long exact action sequences that
    a uniform epsilon breaks; AMAGO explores its T-Mazes with such a time-dependent epsilon."""
    start_epsilon_steps: int = 1
    """How many steps at the start of every episode explore with ``start_epsilon`` (the actors' step counters
    are saved in checkpoints)."""
    boltzmann_temperature: float = 0.0
    """When > 0, an actor that does not take its epsilon-random action samples ``softmax(Q / temperature)``
    (Q as the head outputs it: rescaled when ``value_rescaling``) instead of the argmax: it explores where
    actions' values are close and exploits where one action is clearly best. 0 (default): greedy."""
    dueling: bool = True
    """Dueling Q head (V + A - mean A)."""
    count_bonus: float = 0.0
    """When > 0, an exploring actor ranks actions by ``Q + count_bonus / sqrt(1 + N(phi(o), a))``, where N counts
    how often the actors took ``a`` in an observation with the same SimHash code ``phi(o)`` (Tang et al. 2017;
    Q as the head outputs it: rescaled when ``value_rescaling``). It tries actions never taken in rarely seen
    observations, which epsilon-greedy almost never does when reaching them takes a long exact action sequence
    (a T-Maze junction). The counts are saved in checkpoints. 0 (default): off."""
    count_hash_bits: int = 16
    """Length of the SimHash code of ``count_bonus`` (a table of ``2^bits x n_actions`` counts)."""
    count_split_start: bool = False
    """Count the first step of an episode apart from later steps with the same observation (see
    :class:`HashedActionCounts`): needed where the start looks like what follows it, as the Active T-Maze's
    start cell looks like its corridor."""
    count_bonus_form: Literal["count", "ucb"] = "count"
    """``"count"``: ``count_bonus / sqrt(1 + N(phi, a))``; ``"ucb"`` (UCB1): ``count_bonus * sqrt(ln(1 + N(phi))
    / (1 + N(phi, a)))`` with ``N(phi)`` the observation's visits, which grows for an action never tried in an
    often-seen observation until it is tried, however wide the value gap."""

    _field_ranges = {
        "n_step": Range(1, 10_000), "rescale_eps": POSITIVE, "epsilon": UNIT, "epsilon_alpha": NON_NEGATIVE,
        "start_epsilon": UNIT, "start_epsilon_steps": POSITIVE_INT, "boltzmann_temperature": NON_NEGATIVE,
        "count_bonus": NON_NEGATIVE, "count_hash_bits": Range(1, 24),
    }

    @property
    def lookahead(self) -> int:
        return self.n_step

    def validate(self) -> None:
        super().validate()
        if self.n_step < 1:
            raise self._bad("n_step", ">= 1")
        if not 0.0 <= self.epsilon <= 1.0:
            raise self._bad("epsilon", "in [0, 1]")
        if not self.epsilon_alpha >= 0:
            raise self._bad("epsilon_alpha", ">= 0")
        if not 0.0 <= self.start_epsilon <= 1.0:
            raise self._bad("start_epsilon", "in [0, 1]")
        if self.start_epsilon_steps < 1:
            raise self._bad("start_epsilon_steps", ">= 1")
        if not self.boltzmann_temperature >= 0:
            raise self._bad("boltzmann_temperature", ">= 0")
        if not self.count_bonus >= 0:
            raise self._bad("count_bonus", ">= 0")
        if not 1 <= self.count_hash_bits <= 24:
            raise self._bad("count_hash_bits", "in [1, 24]")
        if self.runner_epsilon not in ("env", "runner"):
            raise self._bad("runner_epsilon", "'env' or 'runner'")
        if self.count_bonus_form not in ("count", "ucb"):
            raise self._bad("count_bonus_form", "'count' or 'ucb'")
        if not self.rescale_eps >= 0:
            raise self._bad("rescale_eps", ">= 0")


def actor_epsilons(n_envs: int, epsilon: float, alpha: float) -> Tensor:
    """Ape-X per-actor exploration rates ``epsilon^(1 + alpha i / (N - 1))`` -> ``[N]`` (``[epsilon]`` for N = 1)."""
    if n_envs == 1:
        return torch.tensor([epsilon])
    i = torch.arange(n_envs, dtype=torch.float64)
    return (epsilon ** (1.0 + alpha * i / (n_envs - 1))).to(torch.float32)


class R2D2:
    """R2D2's Q network, target network, optimizer and update (arguments as :class:`~tracerl.algos.sac.SAC`)."""

    name = "r2d2"
    trains_memory_losses = True
    """Whether its updates train a memory core's own losses (``MemoryCore.memory_losses``, e.g. the strategic
    memory's learned retention)."""

    def __init__(self, obs_dim: int, codec: ActionCodec, config: R2D2Config, policy_config: PolicyConfig,
                 memory_factory: Any = None, input_index: list[int] | None = None,
                 device: torch.device | str = "cpu", observation_space: gym.Space | None = None) -> None:
        if not codec.discrete:
            raise ConfigError("algo='r2d2' acts in Discrete action spaces (so does algo='drqn'); use algo='sac' or "
                              "'td3' for Box actions")
        config.validate()
        self.config, self.codec, self.device = config, codec, torch.device(device)
        core: MemoryCore | None = memory_factory() if memory_factory is not None else None
        self.q_torso = RecurrentTorso(obs_dim, codec, policy_config, core, input_index,
                                      observation_space).to(self.device)
        self.q_head = DiscreteQ(self.q_torso.output_dim, codec.n, tuple(config.head_hidden), config.dueling).to(self.device)
        self.target_torso = copy.deepcopy(self.q_torso).requires_grad_(False)
        self.target_head = copy.deepcopy(self.q_head).requires_grad_(False)
        self.opt = torch.optim.Adam([*self.q_torso.parameters(), *self.q_head.parameters()], lr=config.learning_rate)
        self.n_updates = 0
        self.epsilons: Tensor | None = None
        self.episode_step: Tensor | None = None
        """Steps since each actor's episode began (tracked from ``act``'s ``episode_start`` flags)."""
        self.rng = torch.Generator().manual_seed(int(torch.randint(0, 2**62, ()).item()))
        """The actors' exploration draws, seeded from torch's current generator (the agent's training stream)."""
        self.counts = (HashedActionCounts(obs_dim, codec.n, config.count_hash_bits,
                                          split_start=config.count_split_start).to(self.device)
                       if config.count_bonus > 0 else None)

    def torsos(self) -> dict[str, RecurrentTorso]:
        return {"q": self.q_torso}

    @property
    def uses_stored_state(self) -> bool:
        """Whether updates read the replay's stored states (False with ``zero_initial_state``: none are stored)."""
        return not self.config.zero_initial_state

    def window_state(self, batch: SequenceBatch, torso: RecurrentTorso) -> State:
        """The state ``torso`` replays each window of ``batch`` from: the stored one (``{entry: [N, ...]}``), or
        with ``zero_initial_state`` the core's initial state."""
        if self.config.zero_initial_state:
            return torso.initial_state(batch.N, batch.obs.device)
        return batch_state(batch, "q")

    def acting_torso(self) -> str:
        return "q"

    @torch.no_grad()
    def act(self, features: dict[str, Tensor], explore: bool = True, obs: Tensor | None = None,
            episode_start: Tensor | None = None, record: bool = True) -> Tensor:
        """Greedy actions ``[B]``; when exploring, env ``i`` takes a uniform action with probability epsilon_i
        (at least ``start_epsilon`` over the first ``start_epsilon_steps`` steps of its episode: that needs the
        episode-start flags ``episode_start`` ``[B]``, one call per env step), else (``boltzmann_temperature > 0``)
        an action drawn from ``softmax(Q / temperature)``. With
        ``count_bonus > 0`` an exploring call needs the observations ``obs`` ``[B, obs_dim]`` (and, with
        ``count_split_start``, the episode-start flags ``episode_start`` ``[B]``): it adds the count bonus to Q
        before choosing and counts the actions it returns.

        ``record=False`` (``predict`` with ``deterministic=False``, outside training) explores without touching
        the training actors' state: epsilon-greedy with the base ``epsilon`` (or Boltzmann, as configured),
        no count bonus and no start-of-episode rate, drawing from torch's current generator instead of the
        actors' generator, and leaving the count table, episode-step counters and per-actor epsilons as they
        are."""
        q = self.q_head(features["q"])
        if not explore:
            return q.argmax(-1)
        B = q.shape[0]
        if not record:
            return self._epsilon_greedy(q, torch.full((B,), self.config.epsilon), None)
        if self.counts is not None:
            if obs is None:
                raise ValueError("R2D2.act: count_bonus > 0 needs the observations (obs=...) when exploring")
            q = q + self.counts.bonus(obs, self.config.count_bonus, self.config.count_bonus_form,
                                      episode_start).to(q.device)
        if self.epsilons is None or self.epsilons.shape[0] != B:
            self.epsilons = actor_epsilons(B, self.config.epsilon, self.config.epsilon_alpha)
        eps = self.epsilons
        if self.config.start_epsilon > 0:
            if episode_start is None:
                raise ValueError("R2D2.act: start_epsilon > 0 needs the episode-start flags (episode_start=...)")
            start = episode_start.cpu().bool()
            if self.episode_step is None or self.episode_step.shape[0] != B:
                self.episode_step = torch.zeros(B, dtype=torch.long)
            self.episode_step = torch.where(start, torch.zeros_like(self.episode_step), self.episode_step)
            early = self.episode_step < self.config.start_epsilon_steps
            eps = torch.where(early, eps.clamp_min(self.config.start_epsilon), eps)
            self.episode_step = self.episode_step + 1
        action = self._epsilon_greedy(q, eps, self.rng)
        if self.counts is not None:
            assert obs is not None
            self.counts.add(obs, action, episode_start)
        return action

    def _epsilon_greedy(self, q: Tensor, eps: Tensor, generator: torch.Generator | None) -> Tensor:
        """``[B, A] -> [B]``: a uniform action with probability ``eps [B]``, else the argmax of ``q`` (or, with
        ``boltzmann_temperature > 0``, a draw from ``softmax(q / temperature)``); draws from ``generator``
        (None: torch's current generator)."""
        greedy = q.argmax(-1)
        temperature = self.config.boltzmann_temperature
        if temperature > 0:
            probs = torch.softmax(q.detach().cpu().double() / temperature, dim=-1)
            greedy = torch.multinomial(probs, 1, generator=generator).squeeze(-1).to(q.device)
        B = q.shape[0]
        rand = torch.rand(B, generator=generator) < eps
        uniform = torch.randint(0, self.codec.n, (B,), generator=generator)
        return torch.where(rand.to(q.device), uniform.to(q.device), greedy)

    def modules(self) -> dict[str, nn.Module]:
        return {"q_torso": self.q_torso, "q_head": self.q_head, "target_torso": self.target_torso,
                "target_head": self.target_head}

    def extra_tensors(self) -> dict[str, Tensor]:
        extra = {"act_rng": self.rng.get_state()}
        if self.counts is not None:
            extra["visit_counts"] = self.counts.counts
        if self.episode_step is not None:  # exists once the actors have acted with start_epsilon > 0
            extra["episode_step"] = self.episode_step
        return extra

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"q": self.opt}

    def targets(self, batch: SequenceBatch, q_online: Tensor) -> tuple[Tensor, Tensor]:
        """Rescaled double-Q n-step targets ``y [T', N]`` and where they exist (rows ``burn_in ..``); plain
        ``max`` bootstraps without ``double_q``, unrescaled without ``value_rescaling``."""
        cfg, b = self.config, batch.burn_in
        with torch.no_grad():
            hb = unroll_target(self.target_torso, batch, self.window_state(batch, self.target_torso),
                               cfg.include_first_step_in_targets)
            q_bar = self.target_head(hb)
            a_star = q_online.detach().argmax(-1, keepdim=True)
            boot = q_bar.gather(-1, a_star).squeeze(-1) if cfg.double_q else q_bar.max(-1).values
            if cfg.value_rescaling:
                boot = inverse_value_rescale(boot, cfg.rescale_eps)
            greedy = (batch.action[b:].long() == a_star.squeeze(-1)) if cfg.cut_at_exploration else None
            g, ok, _ = nstep_targets(batch.reward[b:], batch.has_action[b:], batch.valid[b:], boot,
                                     batch.terminal[b:], cfg.gamma, cfg.n_step, continue_ok=greedy)
            if cfg.value_rescaling:
                g = value_rescale(g, cfg.rescale_eps)
        return g, ok

    def update(self, batch: SequenceBatch) -> tuple[dict[str, float], Tensor]:
        """One gradient step; returns statistics and ``|delta|`` ``[T', N]`` for the priorities."""
        cfg, b = self.config, batch.burn_in
        core, state = self.q_torso.core, self.window_state(batch, self.q_torso)
        # Only a core with losses of its own pays for its trace.
        traced = type(core).memory_losses is not MemoryCore.memory_losses
        h, trace = unroll_traced(self.q_torso, batch, state) if traced else (unroll(self.q_torso, batch, state, True), {})
        q_all = self.q_head(h)
        y, ok = self.targets(batch, q_all)
        mask = batch.train[b:] & ok
        q = q_all.gather(-1, batch.action[b:].long().unsqueeze(-1)).squeeze(-1)
        delta = q - y
        loss = masked_mean(batch.weight.unsqueeze(0) * 0.5 * delta**2, mask)
        memory_stats: dict[str, float] = {}
        # The core's own losses (MemoryCore.memory_losses; none for RNNs).
        for name, (mem_loss, weight) in core.memory_losses(trace, batch.train[b:].to(h.dtype)).items():
            loss = loss + weight * mem_loss
            memory_stats[name] = float(mem_loss.detach())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = clip_and_step(self.opt, [p for g in self.opt.param_groups for p in g["params"]], cfg.max_grad_norm,
                             "R2D2")
        self.n_updates += 1
        if self.n_updates % cfg.target_update_interval == 0:
            polyak_update(self.target_torso, self.q_torso, cfg.tau)
            polyak_update(self.target_head, self.q_head, cfg.tau)
        stats = {"loss": float(loss.detach()), "q_mean": float(masked_mean(q.detach(), mask)), "grad_norm": norm,
                 **memory_stats}
        return stats, delta.detach().abs() * mask


__all__ = ["R2D2", "R2D2Config", "actor_epsilons"]
