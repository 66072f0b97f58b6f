"""Recurrent PPO with truncated BPTT from stored states (Schulman et al. 2017).

A rollout ``[T, B]`` is cut into chunks of ``bptt_len`` steps; every (chunk, env) pair is one
sequence that restarts from the memory state stored when the chunk was collected. Minibatches are
sets of whole sequences; resets inside a sequence go through ``episode_start``; padding (the tail
of a rollout not divisible by ``bptt_len``) is masked out of every loss.

Loss per minibatch (masked means over valid steps)::

    ρ_t = exp(log π(a_t|h_t) - log π_old(a_t|h_t))
    L_π = -mean(min(ρ_t Â_t, clip(ρ_t, 1-ε, 1+ε) Â_t))
    L_V = 0.5 mean((V_t - R_t)^2)      (or the max with the clipped version when clip_range_vf is set)
    L   = L_π + vf_coef L_V - ent_coef mean(H[π(·|h_t)])

A2C and REINFORCE are configurations of the same update (:meth:`PPOConfig.a2c`,
:meth:`PPOConfig.reinforce`): one epoch over one minibatch makes ρ ≡ 1, so the clipped objective's
gradient is exactly the vanilla policy gradient ``-Â_t ∇ log π(a_t|h_t)``.

REINFORCE (``returns="monte_carlo"``) does not use GAE: ``Â_t = G_t = Σ_k γ^k r_{t+k}`` summed to the end of
the step's episode, never bootstrapped (a truncated episode's return ends at the truncation). Episodes do not
fit in rollouts, so the collector holds back the steps of episodes still running at a rollout's end
(:class:`~tracerl.data.episodes.EpisodeStore`) and an update trains only on whole episodes, replayed from their
first step (where the memory resets), one sequence per env.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Literal

import gymnasium as gym
import torch
from torch import Tensor, nn

from ..config_checks import ANY, NON_NEGATIVE, POSITIVE, UNIT, Range, validate_fields
from ..data.rollout import RolloutBuffer
from ..errors import ConfigError, NonFiniteError
from ..policies.policy import RecurrentActorCritic
from .gae import compute_gae, monte_carlo_returns


@dataclass
class PPOConfig:
    """Hyperparameters of recurrent PPO (and of A2C / REINFORCE, its configurations)."""

    n_envs: int = 16
    """Parallel environments (ignored when a VectorEnv is passed: its num_envs is used)."""
    n_steps: int = 64
    """Steps collected from every env per rollout (rollout size = n_envs * n_steps)."""
    bptt_len: int = -1
    """Truncated-BPTT chunk length in steps; -1 backpropagates through the whole rollout."""
    batch_size: int = 256
    """Env steps per minibatch; minibatches hold batch_size // chunk_len whole sequences."""
    n_epochs: int = 4
    """Passes over the rollout per update."""
    learning_rate: float | None = None
    """Adam step size (initial value when lr_schedule='linear'). None (the default) resolves when the agent is built,
    from the action space: 1e-3 when the actions are a Box (a Gaussian policy), 3e-3 otherwise (categorical heads,
    where the larger step solves CueDelay soonest). On POPGym's PositionOnlyPendulum and NoisyPositionOnlyPendulum
    (squashed Gaussian, 5 seeds at 200k steps) 1e-3 reached 0.85 and 0.69 against 0.80 and 0.53 at 3e-3, whose runs
    also collapsed late on one seed. ``algo="a2c"`` / ``"reinforce"`` set their own."""
    lr_schedule: Literal["constant", "linear"] = "constant"
    """'linear' anneals the learning rate to 0 over total_timesteps."""
    gamma: float = 0.99
    """Discount factor."""
    lam: float = 0.95
    """GAE lambda (1.0 gives Monte Carlo returns)."""
    clip_range: float = 0.2
    """PPO ratio clipping epsilon."""
    clip_range_vf: float | None = None
    """Clip the value update to this distance from the old value (None: no value clipping)."""
    ent_coef: float = 0.0
    """Entropy bonus weight."""
    vf_coef: float = 0.5
    """Value loss weight."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip (<= 0 disables it)."""
    normalize_advantage: bool = True
    """Normalize advantages per minibatch."""
    target_kl: float | None = None
    """Stop the epochs early once the approximate KL exceeds this (None: never)."""
    use_critic: bool = True
    """Learn V and use it in GAE; False gives REINFORCE without a baseline."""
    adam_eps: float = 1e-5
    """Adam epsilon."""
    adam_impl: Literal["fused", "foreach", "single"] = "fused"
    """How Adam's step runs (the same update up to float rounding): 'fused' one kernel over all parameters (the
    fastest on CPU; devices without fused Adam use 'foreach'), 'foreach' torch's multi-tensor ops, 'single' one
    parameter at a time (torch's own CPU default before tracerl chose)."""
    max_consecutive_skips: int = 8
    """Stop with NonFiniteError after this many minibatch updates in a row were skipped for a NaN/inf loss
    or gradient (each skipped update leaves the parameters unchanged and is counted)."""
    nan_policy: Literal["raise", "warn"] = "raise"
    """Non-finite observations or rewards from an env: 'raise' NonFiniteError (naming env index, step, key and
    last action), or 'warn' and replace them by 0."""
    bootstrap_on_truncation: bool = True
    """Add gamma * V(final observation) to the reward of truncated steps (False treats time limits as terminal).
    Only a trained critic bootstraps: without one (use_critic=False) nothing is added."""
    returns: Literal["gae", "monte_carlo"] = "gae"
    """'gae': GAE(lam) over each rollout, bootstrapped by the critic at the rollout's end. 'monte_carlo'
    (REINFORCE): the discounted reward sum to the end of each episode, never bootstrapped (a truncated episode's
    return ends at the truncation); the steps of episodes still running at a rollout's end are held back, and an
    update trains only on whole episodes. With use_critic=True the critic is a learned baseline: advantages are
    G_t - V(h_t) and V is trained on G_t."""
    max_episode_steps: int = 100_000
    """returns='monte_carlo' only: the most steps of one running episode held back per env; a longer episode
    raises ConfigError (REINFORCE needs episodes that end)."""

    _field_ranges = {  # valid values per field, checked with the annotations by tracerl.config_checks
        "n_envs": Range(1, 4096), "n_steps": Range(1, 10**6), "bptt_len": Range(lo=1, also=(-1,)),
        "batch_size": Range(lo=1, also=(-1,)), "n_epochs": Range(1, 10_000), "learning_rate": POSITIVE,
        "gamma": UNIT, "lam": UNIT, "clip_range": POSITIVE, "clip_range_vf": POSITIVE, "ent_coef": NON_NEGATIVE,
        "vf_coef": NON_NEGATIVE, "max_grad_norm": ANY, "target_kl": POSITIVE, "adam_eps": Range(0, 1, lo_open=True),
        "max_consecutive_skips": Range(1, 10**6),
    }

    def __post_init__(self) -> None:
        validate_fields(self)

    @classmethod
    def a2c(cls, **overrides: Any) -> "PPOConfig":
        """A2C (Mnih et al. 2016): short rollouts, one epoch, one minibatch, no advantage normalization."""
        base = dict(n_steps=8, n_epochs=1, batch_size=-1, normalize_advantage=False, lam=1.0,
                    learning_rate=7e-4, max_grad_norm=0.5, bptt_len=-1)
        base.update(overrides)
        return cls(**base)

    @classmethod
    def reinforce(cls, **overrides: Any) -> "PPOConfig":
        """REINFORCE (Williams 1992): Monte Carlo returns over whole episodes (never bootstrapped: a truncated
        episode's return ends at the truncation), no critic, one epoch over one minibatch of whole episodes.

        The advantage is the return itself, normalized over the batch (``normalize_advantage``: subtracting the
        batch mean is REINFORCE's constant baseline); ``use_critic=True`` (with ``vf_coef > 0``) adds a learned
        baseline V trained on the same returns."""
        base = dict(n_epochs=1, batch_size=-1, lam=1.0, use_critic=False, normalize_advantage=True,
                    vf_coef=0.0, bptt_len=-1, learning_rate=1e-2, returns="monte_carlo",
                    bootstrap_on_truncation=False)
        base.update(overrides)
        return cls(**base)

    def resolve_learning_rate(self, action_space: Any) -> float:
        """Make ``learning_rate=None`` a number for ``action_space`` (1e-3 for a Box, a Gaussian policy; 3e-3 for any
        other space), in place; the learning rate used."""
        if self.learning_rate is None:
            self.learning_rate = 1e-3 if isinstance(action_space, gym.spaces.Box) else 3e-3
        return self.learning_rate

    @property
    def bootstraps_truncations(self) -> bool:
        """Whether the collector folds gamma * V(final observation) into truncated steps' rewards: only GAE
        with a trained critic does."""
        return self.bootstrap_on_truncation and self.use_critic and self.returns == "gae"

    @property
    def chunk_len(self) -> int:
        return self.n_steps if self.bptt_len == -1 else self.bptt_len

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid field, its value and the valid range."""
        def bad(name: str, rng: str) -> ConfigError:
            return ConfigError(f"{name}={getattr(self, name)!r} is invalid: must be {rng}")

        validate_fields(self)  # types, finiteness and ranges of every field (fields may be reassigned)

        if self.n_envs < 1:
            raise bad("n_envs", ">= 1")
        if self.n_steps < 1:
            raise bad("n_steps", ">= 1")
        if self.bptt_len != -1 and self.bptt_len < 1:
            raise bad("bptt_len", "-1 (whole rollout) or >= 1")
        if self.bptt_len > self.n_steps:
            raise ConfigError(f"bptt_len={self.bptt_len} is longer than the rollout n_steps={self.n_steps}")
        if self.batch_size != -1 and self.batch_size < self.chunk_len:
            raise ConfigError(
                f"batch_size={self.batch_size} is smaller than one BPTT chunk ({self.chunk_len} steps); "
                "use batch_size >= chunk length, or -1 for the whole rollout"
            )
        if self.n_epochs < 1:
            raise bad("n_epochs", ">= 1")
        if self.learning_rate is not None and not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise bad("learning_rate", "> 0 and finite, or None (chosen from the action space)")
        if self.lr_schedule not in ("constant", "linear"):
            raise bad("lr_schedule", "'constant' or 'linear'")
        if not 0.0 <= self.gamma <= 1.0:
            raise bad("gamma", "in [0, 1]")
        if not 0.0 <= self.lam <= 1.0:
            raise bad("lam", "in [0, 1]")
        if not self.clip_range > 0:
            raise bad("clip_range", "> 0")
        if self.clip_range_vf is not None and not self.clip_range_vf > 0:
            raise bad("clip_range_vf", "> 0 or None")
        if self.ent_coef < 0:
            raise bad("ent_coef", ">= 0")
        if self.vf_coef < 0:
            raise bad("vf_coef", ">= 0")
        if self.target_kl is not None and not self.target_kl > 0:
            raise bad("target_kl", "> 0 or None")
        if not self.adam_eps > 0:
            raise bad("adam_eps", "> 0")
        if self.max_consecutive_skips < 1:
            raise bad("max_consecutive_skips", ">= 1")
        if self.nan_policy not in ("raise", "warn"):
            raise bad("nan_policy", "'raise' or 'warn'")
        if self.returns not in ("gae", "monte_carlo"):
            raise bad("returns", "'gae' or 'monte_carlo'")
        if self.returns == "monte_carlo":
            if self.bootstrap_on_truncation:
                raise ConfigError("bootstrap_on_truncation=True is invalid with returns='monte_carlo': Monte Carlo "
                                  "returns end at a truncation, nothing is bootstrapped (set it to False)")
            if self.bptt_len != -1:
                raise ConfigError(f"bptt_len={self.bptt_len} is invalid with returns='monte_carlo': REINFORCE "
                                  "replays whole episodes from their first step (use -1)")
            if isinstance(self.max_episode_steps, bool) or not isinstance(self.max_episode_steps, int) \
                    or self.max_episode_steps < 1:
                raise bad("max_episode_steps", "an int >= 1")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "PPOConfig":
        from ..config_docs import config_from_json

        return config_from_json(cls, d)


FUSED_ADAM_DEVICES = ("cpu", "cuda")
"""Device types whose fused Adam kernel ``adam_impl='fused'`` uses (elsewhere it falls back to 'foreach')."""


def make_adam(params: Any, lr: float, eps: float, impl: str = "fused") -> torch.optim.Adam:
    """``torch.optim.Adam`` with the step implementation ``impl`` (see :attr:`PPOConfig.adam_impl`): 'fused',
    'foreach' or 'single' (the same update up to float rounding; torch on CPU defaults to 'single')."""
    params = list(params)
    if impl == "fused":
        devices = {p.device.type for p in params}
        if params and devices <= set(FUSED_ADAM_DEVICES) and all(p.dtype.is_floating_point for p in params):
            return torch.optim.Adam(params, lr=lr, eps=eps, fused=True)
        impl = "foreach"
    if impl not in ("foreach", "single"):
        raise ConfigError(f"adam_impl={impl!r} is invalid: must be one of 'fused', 'foreach', 'single'")
    return torch.optim.Adam(params, lr=lr, eps=eps, foreach=impl == "foreach")


def _masked_mean(x: Tensor, mask: Tensor, denom: Tensor) -> Tensor:
    return (x * mask).sum() / denom


def explained_variance(pred: Tensor, target: Tensor) -> float:
    """1 - Var[target - pred] / Var[target] (nan when the target is constant)."""
    var = target.var()
    return float("nan") if var == 0 else float(1 - (target - pred).var() / var)


class PPO:
    """The recurrent PPO update. Owns the optimizer; data collection is :class:`RolloutCollector`'s job."""

    def __init__(self, policy: RecurrentActorCritic, config: PPOConfig, intrinsic_coef: float = 0.0,
                 gamma_int: float = 0.99) -> None:
        """``intrinsic_coef`` (η) weighs the intrinsic advantage when the policy has an intrinsic value head:
        ``A = A_ext + η A_int``, with ``A_int`` from GAE on the non-episodic intrinsic return (``gamma_int``)."""
        config.validate()
        if config.returns == "monte_carlo" and intrinsic_coef != 0.0:
            raise ConfigError("returns='monte_carlo' (REINFORCE) does not take an intrinsic reward (use_rnd): "
                              "use algo='ppo' or 'a2c' for exploration bonuses")
        self.policy = policy
        self.config = config
        self.intrinsic_coef = intrinsic_coef
        self.gamma_int = gamma_int
        lr = config.resolve_learning_rate(policy.action_space)  # None: chosen from the action space
        self.optimizer = make_adam(policy.parameters(), lr, config.adam_eps, config.adam_impl)
        self._params = list(policy.parameters())
        self.n_updates = 0
        self.skipped_updates = 0
        self.consecutive_skips = 0

    def set_learning_rate(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def compute_advantages(self, buf: RolloutBuffer) -> None:
        """Fill ``buf.advantage`` and ``buf.returns`` by GAE (values zero without a critic)."""
        assert buf.last_value is not None
        cfg = self.config
        values = buf.value if cfg.use_critic else torch.zeros_like(buf.value)
        last = buf.last_value if cfg.use_critic else torch.zeros_like(buf.last_value)
        buf.advantage, buf.returns = compute_gae(buf.reward, values, buf.done, last, cfg.gamma, cfg.lam)
        if buf.reward_int is not None and buf.value_int is not None and buf.last_value_int is not None:
            # Burda et al. 2018: the intrinsic return does not stop at episode ends.
            adv_int, buf.returns_int = compute_gae(buf.reward_int, buf.value_int, torch.zeros_like(buf.done),
                                                   buf.last_value_int, self.gamma_int, cfg.lam)
            buf.advantage = buf.advantage + self.intrinsic_coef * adv_int

    def _sequences(self, buf: RolloutBuffer) -> dict[str, Tensor]:
        """Reshape ``[T, B, ...]`` rollout fields into ``[L, C*B, ...]`` sequences plus a padding mask."""
        T, B, L = buf.n_steps, buf.n_envs, buf.chunk_len
        C = -(-T // L)
        pad = C * L - T

        def seq(x: Tensor, fill: float | bool = 0) -> Tensor:
            if pad:
                x = torch.cat([x, x.new_full((pad, *x.shape[1:]), fill)], dim=0)
            x = x.view(C, L, B, *x.shape[2:]).transpose(0, 1)  # [L, C, B, ...]
            return x.reshape(L, C * B, *x.shape[3:])

        assert buf.advantage is not None and buf.returns is not None
        extra: dict[str, Tensor] = {f"replay/{k}": seq(v) for k, v in buf.replay.items()}
        extra.update({f"info/{k}": seq(v) for k, v in buf.info.items()})
        if buf.env_reward is not None:
            extra["env_reward"] = seq(buf.env_reward)
            extra["done"] = seq(buf.done)
        if buf.returns_int is not None and buf.value_int is not None:
            extra["returns_int"] = seq(buf.returns_int)
        return {
            **extra,
            "obs": seq(buf.obs),
            "episode_start": seq(buf.episode_start, True),
            "prev_action": seq(buf.prev_action),
            "prev_reward": seq(buf.prev_reward),
            "action": seq(buf.action),
            "log_prob": seq(buf.log_prob),
            "value": seq(buf.value),
            "advantage": seq(buf.advantage),
            "returns": seq(buf.returns),
            # padding_mask * valid: steps of an episode that ended in an env crash never enter a loss
            "mask": seq(torch.ones(T, B, device=buf.obs.device) if buf.valid is None else buf.valid.float()),
        }

    def episode_sequences(self, buf: RolloutBuffer) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """REINFORCE's training data: the whole episodes the collector handed out with ``buf`` (``[L, B]``, one
        sequence per env starting on an episode start), their Monte Carlo returns and advantages, and the initial
        memory state every sequence starts from. Also sets ``buf.returns`` / ``buf.advantage`` to the trained
        steps' values (flattened, for logging)."""
        if buf.episodes is None:
            raise RuntimeError("returns='monte_carlo' needs a RolloutCollector built with whole_episodes=True "
                               "(it hands out whole episodes with every rollout)")
        cfg, ep = self.config, buf.episodes
        mask = ep["mask"]
        returns = monte_carlo_returns(ep["reward"], ep["done"].bool(), cfg.gamma)
        advantage = returns - ep["value"] if cfg.use_critic else returns.clone()
        seqs = {k: v for k, v in ep.items() if k not in ("reward", "valid")}
        seqs.update(returns=returns, advantage=advantage)
        trained = mask > 0
        buf.returns, buf.advantage = returns[trained], advantage[trained]
        states = self.policy.initial_state(mask.shape[1], mask.device)
        return seqs, states

    def update(self, buf: RolloutBuffer, generator: torch.Generator | None = None) -> dict[str, float]:
        """Run ``n_epochs`` of minibatch updates on ``buf``; return training statistics."""
        cfg, policy = self.config, self.policy
        if cfg.returns == "monte_carlo":
            seqs, states = self.episode_sequences(buf)
            seq_len = int(seqs["obs"].shape[0])
            ev = explained_variance(seqs["value"][seqs["mask"] > 0], seqs["returns"][seqs["mask"] > 0]) \
                if bool((seqs["mask"] > 0).any()) else float("nan")
        else:
            self.compute_advantages(buf)
            seqs = self._sequences(buf)
            states = {k: v.reshape(-1, *v.shape[2:]) for k, v in buf.chunk_states.items()}  # [C*B, ...]
            seq_len = buf.chunk_len
            assert buf.returns is not None
            ev = explained_variance(buf.value.flatten(), buf.returns.flatten())
        n_seq = seqs["obs"].shape[1] if seq_len > 0 else 0
        per_mb = n_seq if cfg.batch_size == -1 else max(1, cfg.batch_size // max(seq_len, 1))
        sums: dict[str, float] = {"loss": 0.0, "policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0,
                                  "approx_kl": 0.0, "clip_fraction": 0.0, "grad_norm": 0.0}
        n_mb = 0
        stop = False
        for _epoch in range(cfg.n_epochs if n_seq else 0):
            perm = torch.randperm(n_seq, generator=generator).to(seqs["obs"].device)
            # one gather per field and epoch; every minibatch is then a slice (a view) of the shuffled copy
            shuffled = {k: v[:, perm] for k, v in seqs.items()}
            shuffled_state = {k: v[perm] for k, v in states.items()}
            for start in range(0, n_seq, per_mb):
                mb = {k: v[:, start : start + per_mb] for k, v in shuffled.items()}
                mb_state = {k: v[start : start + per_mb] for k, v in shuffled_state.items()}
                stats = self._step(mb, mb_state)
                if stats is None:
                    continue
                for k in stats:
                    sums[k] = sums.get(k, 0.0) + stats[k]
                n_mb += 1
                if cfg.target_kl is not None and stats["approx_kl"] > 1.5 * cfg.target_kl:
                    stop = True
                    break
            if stop:
                break
        out = {k: v / max(n_mb, 1) for k, v in sums.items()}
        out["explained_variance"] = ev
        out["n_updates"] = float(self.n_updates)
        out["skipped_updates"] = float(self.skipped_updates)
        out["learning_rate"] = float(self.optimizer.param_groups[0]["lr"])
        return out

    def _skip(self, why: str) -> None:
        """Count a skipped minibatch update; raise once too many were skipped in a row."""
        self.skipped_updates += 1
        self.consecutive_skips += 1
        if self.consecutive_skips >= self.config.max_consecutive_skips:
            raise NonFiniteError(
                f"{self.consecutive_skips} PPO updates in a row skipped ({why}; {self.skipped_updates} skipped in "
                f"total, after {self.n_updates} good updates): the parameters or the data hold NaN/inf"
            )
        warnings.warn(f"skipped a PPO update: {why}", RuntimeWarning, stacklevel=3)
        return None

    def _step(self, mb: dict[str, Tensor], state: dict[str, Tensor]) -> dict[str, float] | None:
        cfg, policy = self.config, self.policy
        mask = mb["mask"]
        denom = mask.sum().clamp_min(1.0)
        replay = {k[len("replay/"):]: v for k, v in mb.items() if k.startswith("replay/")}
        # The training inputs the core declares it wants (MemoryCore.training_inputs; none for most cores).
        wants = policy.core.training_inputs()
        if "env_reward" in mb:
            replay.update(wants.fill(reward=lambda: mb["env_reward"],
                                     action=lambda: policy.prev_action_features(mb["action"]),
                                     episode_end=lambda: mb["done"]))
        replay.update(wants.fill(step_mask=lambda: mask > 0))  # padding and crashed episodes' steps are not data
        out = policy.forward_full(mb["obs"], state, mb["episode_start"], mb["prev_action"], mb["prev_reward"],
                                  replay=replay or None)
        dist, values = out.dist, out.value
        log_prob = dist.log_prob(mb["action"])
        log_ratio = log_prob - mb["log_prob"]
        ratio = log_ratio.exp()
        adv = mb["advantage"]
        if cfg.normalize_advantage:
            mean = _masked_mean(adv, mask, denom)
            std = (_masked_mean((adv - mean) ** 2, mask, denom)).sqrt()
            adv = (adv - mean) / (std + 1e-8)
        pg1 = ratio * adv
        pg2 = ratio.clamp(1 - cfg.clip_range, 1 + cfg.clip_range) * adv
        policy_loss = -_masked_mean(torch.min(pg1, pg2), mask, denom)
        entropy = _masked_mean(dist.entropy(), mask, denom)
        loss = policy_loss - cfg.ent_coef * entropy
        if cfg.use_critic:
            v_err = (values - mb["returns"]) ** 2
            if cfg.clip_range_vf is not None:
                v_clip = mb["value"] + (values - mb["value"]).clamp(-cfg.clip_range_vf, cfg.clip_range_vf)
                v_err = torch.max(v_err, (v_clip - mb["returns"]) ** 2)
            value_loss = 0.5 * _masked_mean(v_err, mask, denom)
            loss = loss + cfg.vf_coef * value_loss
        else:
            value_loss = torch.zeros(())
        extra: dict[str, float] = {}
        if out.value_int is not None and "returns_int" in mb:
            value_loss_int = 0.5 * _masked_mean((out.value_int - mb["returns_int"]) ** 2, mask, denom)
            loss = loss + cfg.vf_coef * value_loss_int
            extra["value_loss_int"] = float(value_loss_int.detach())
        for name, (mem_loss, weight) in policy.core.memory_losses(out.trace, mask).items():
            loss = loss + weight * mem_loss
            extra[name] = float(mem_loss.detach())
        aux_modules = getattr(policy, "aux_modules", None)
        if aux_modules is not None and len(aux_modules):
            aux_total = sum(m.coef * m.loss(out.features, mb, mask) for m in aux_modules)
            loss = loss + aux_total
            extra["aux_loss"] = float(aux_total.detach())
            for m in aux_modules:
                extra.update({f"aux/{k}": v for k, v in m.loss_parts().items()})
        self.optimizer.zero_grad(set_to_none=True)
        if not bool(torch.isfinite(loss)):
            return self._skip(f"loss is {float(loss.detach())}")
        loss.backward()
        params = [p for p in self._params if p.grad is not None]
        if cfg.max_grad_norm > 0:
            grad_norm = nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        else:
            grad_norm = torch.norm(torch.stack([p.grad.norm() for p in params]))
        if not bool(torch.isfinite(grad_norm)):
            self.optimizer.zero_grad(set_to_none=True)
            return self._skip(f"gradient norm is {float(grad_norm)}")
        self.optimizer.step()
        self.n_updates += 1
        self.consecutive_skips = 0
        with torch.no_grad():
            approx_kl = _masked_mean((ratio - 1) - log_ratio, mask, denom)
            clip_frac = _masked_mean(((ratio - 1).abs() > cfg.clip_range).float(), mask, denom)
        return {"loss": float(loss.detach()), "policy_loss": float(policy_loss.detach()), "value_loss": float(value_loss.detach()),
                "entropy": float(entropy.detach()), "approx_kl": float(approx_kl), "clip_fraction": float(clip_frac),
                "grad_norm": float(grad_norm), **extra}


__all__ = ["PPO", "PPOConfig", "explained_variance", "make_adam"]
