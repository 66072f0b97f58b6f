"""Decision Transformer (Chen et al. 2021, "Decision Transformer: Reinforcement Learning via Sequence Modeling").

A trajectory is the token sequence ``(R_1, s_1, a_1, R_2, s_2, a_2, ...)`` where ``R_t = sum_{k >= t} r_k`` is the
return-to-go (:func:`~tracerl.offline.dataset.returns_to_go`). Each token is a linear embedding of its value
(discrete actions: a lookup table) plus a learned embedding of the episode timestep ``t`` (shared by the step's
three tokens), then a LayerNorm. A causal transformer (GPT-style pre-LN blocks) reads the last ``K`` timesteps
(``3K`` tokens) and the action ``a_t`` is predicted from the output at the state token ``s_t``, which sees
``R_1..R_t, s_1..s_t, a_1..a_{t-1}`` and nothing later. Training minimises the action loss (cross-entropy for
Discrete actions, mean squared error for Box actions scaled to [-1, 1]) on windows of recorded episodes.
At evaluation the first return-to-go is a chosen *target return*; after each reward it drops by that reward.

Behaviour cloning (:mod:`tracerl.offline.bc`) is the same network without the return tokens
(``condition_on_return=False``: ``(s_1, a_1, s_2, ...)``), so DT vs BC isolates return conditioning.

:class:`SequencePolicy` acts under the ``predict`` API of :class:`~tracerl.TraceRL`: its state is the context
(the last ``K`` steps' returns-to-go, observations, actions and timesteps, and which of the ``K`` slots hold a
step), a dict of batch-first tensors passed in and out explicitly; ``episode_start`` empties a row's context.
It saves to a tracerl checkpoint (safetensors + JSON; no pickle).

Deviations from the paper's code, all settings: the training windows end at a uniformly drawn step of the data and
reach back up to ``K`` steps (the paper's code draws the window's *start*; when ``K`` covers a whole episode that
rarely shows the model the first step together with the last, which memory tasks need); a timestep beyond the
embedding table uses its last entry.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import Tensor, nn

from tracerl.errors import CheckpointError, ConfigError, UnsupportedSpaceError

CHECKPOINT_KIND = "tracerl.offline.SequencePolicy"
"""``kind`` of the checkpoints :meth:`SequencePolicy.save` writes."""


WINDOW_ENDS = ("uniform", "episode")
"""Values of :attr:`DTConfig.window_ends`."""


@dataclass
class DTConfig:
    """Decision Transformer / behaviour cloning settings: the network, its context and its offline training."""

    context_len: int = 20
    """K: timesteps the transformer reads (3K tokens with return tokens, 2K without). A memory task needs K at least
    the number of steps between the cue and the decision."""
    embed_dim: int = 64
    """Width of every token embedding and of the transformer."""
    n_layers: int = 2
    """Transformer blocks."""
    n_heads: int = 2
    """Attention heads per block (must divide embed_dim)."""
    dropout: float = 0.1
    """Dropout on embeddings, attention weights and block outputs during training."""
    condition_on_return: bool = True
    """True: Decision Transformer (return-to-go tokens). False: behaviour cloning with the same transformer."""
    gamma: float = 1.0
    """Discount of the returns-to-go (the paper: 1, undiscounted)."""
    return_scale: float | None = None
    """Returns-to-go are divided by this before embedding; None: the largest |episode return| in the training data
    (at least 1)."""
    max_timestep: int | None = None
    """Entries of the timestep embedding; None: the longest training episode. Later timesteps use the last entry."""
    learning_rate: float = 6e-4
    """AdamW learning rate (after the warmup)."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    warmup_steps: int = 100
    """Gradient steps of linear learning-rate warmup from 0."""
    batch_size: int = 64
    """Windows per gradient step."""
    train_steps: int = 2000
    """Gradient steps."""
    grad_clip: float = 0.25
    """Gradient-norm clip (the paper's 0.25)."""
    top_fraction: float = 1.0
    """Train only on the episodes whose return is in this top fraction of the dataset (percentile BC, "%BC":
    0.1 is the best 10 %); 1 keeps every episode."""
    threads: int = 1
    """torch CPU threads while training (1 is fastest for small networks)."""
    window_ends: str = "uniform"
    """Where training windows end: ``"uniform"``, at a uniformly drawn step of the data (each step equally likely);
    ``"episode"``, at the last step of a uniformly drawn episode. With K at least the episode length an
    ``"episode"`` window holds the whole episode, and the causal mask predicts every action in it from its full
    past, so it trains every step a shorter window ending earlier would; a step that occurs once per episode (the
    decision of a memory task) is then in every window instead of one in ``len(episode)``. With K shorter than
    the episodes, ``"episode"`` never trains the steps more than K before an episode's end."""

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first invalid field."""
        for name in ("context_len", "embed_dim", "n_layers", "n_heads", "batch_size", "train_steps", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"DTConfig.{name}={value!r} is invalid; it must be an int >= 1.")
        if self.embed_dim % self.n_heads:
            raise ConfigError(f"DTConfig.n_heads={self.n_heads} does not divide embed_dim={self.embed_dim}.")
        if isinstance(self.warmup_steps, bool) or not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ConfigError(f"DTConfig.warmup_steps={self.warmup_steps!r} is invalid; it must be an int >= 0.")
        for name, lo, hi in (("dropout", 0.0, 1.0), ("gamma", 0.0, 1.0), ("top_fraction", 0.0, 1.0)):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not lo <= value <= hi or (name == "top_fraction" and value == 0):
                raise ConfigError(f"DTConfig.{name}={value!r} is invalid; it must be in "
                                  f"{'(0' if name == 'top_fraction' else '[' + str(lo)}, {hi}].")
        for name in ("learning_rate", "grad_clip"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"DTConfig.{name}={value!r} is invalid; it must be a finite number > 0.")
        if self.window_ends not in WINDOW_ENDS:
            raise ConfigError(f"DTConfig.window_ends={self.window_ends!r} is invalid; it must be one of {WINDOW_ENDS}.")
        if not isinstance(self.weight_decay, (int, float)) or self.weight_decay < 0:
            raise ConfigError(f"DTConfig.weight_decay={self.weight_decay!r} is invalid; it must be >= 0.")
        if self.return_scale is not None and (not isinstance(self.return_scale, (int, float))
                                              or not math.isfinite(self.return_scale) or self.return_scale <= 0):
            raise ConfigError(f"DTConfig.return_scale={self.return_scale!r} is invalid; it must be None or > 0.")
        if self.max_timestep is not None and (isinstance(self.max_timestep, bool)
                                              or not isinstance(self.max_timestep, int) or self.max_timestep < 1):
            raise ConfigError(f"DTConfig.max_timestep={self.max_timestep!r} is invalid; it must be None or an int >= 1.")

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "DTConfig") -> "DTConfig":
        """Build from a dict; unknown keys raise :class:`ConfigError` naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown settings {unknown}; valid: {sorted(known)}.")
        return cls(**values)


class ActionCodec:
    """Env actions <-> the network's action values: Discrete -> index ``a - start`` (int64); Box -> float32 scaled
    to [-1, 1] (when both bounds are finite; else unscaled)."""

    def __init__(self, space: spaces.Space[Any]) -> None:
        self.space = space
        if isinstance(space, spaces.Discrete):
            self.discrete, self.n, self.dim = True, int(space.n), 1
        elif isinstance(space, spaces.Box) and len(space.shape) == 1:
            self.discrete, self.n, self.dim = False, 0, int(space.shape[0])
            low, high = space.low.astype(np.float64), space.high.astype(np.float64)
            self.bounded = bool(np.all(np.isfinite(low)) and np.all(np.isfinite(high)))
            self.low, self.high = low, high
        else:
            raise UnsupportedSpaceError(f"Decision Transformer / BC act in Discrete or 1-d Box action spaces, not {space!r}")

    @property
    def out_dim(self) -> int:
        return self.n if self.discrete else self.dim

    def encode(self, actions: Any) -> np.ndarray:
        """Env actions ``[N(, A)]`` -> int64 ``[N]`` or float32 ``[N, A]``."""
        a = np.asarray(actions)
        if self.discrete:
            return (a.reshape(-1) - int(self.space.start)).astype(np.int64)
        a = a.reshape(-1, self.dim).astype(np.float64)
        if self.bounded:
            a = 2.0 * (a - self.low) / np.maximum(self.high - self.low, 1e-12) - 1.0
        return a.astype(np.float32)

    def decode(self, values: np.ndarray) -> np.ndarray:
        """Network actions -> env actions."""
        if self.discrete:
            return (values.astype(np.int64) + int(self.space.start)).astype(np.int64)
        v = values.astype(np.float64)
        if self.bounded:
            v = self.low + (np.clip(v, -1.0, 1.0) + 1.0) * 0.5 * (self.high - self.low)
        return v.astype(self.space.dtype)


class CausalBlock(nn.Module):
    """A pre-LayerNorm transformer block (GPT-2 style): masked multi-head self-attention, then a GELU MLP."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.drop = nn.Dropout(dropout)
        self.attn_dropout = dropout

    def forward(self, x: Tensor, allowed: Tensor) -> Tensor:
        """``x [B, N, dim]``; ``allowed [B, 1, N, N]`` bool, True where query i may attend to key j."""
        B, N, dim = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, N, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed,
                                           dropout_p=self.attn_dropout if self.training else 0.0)
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(B, N, dim)))
        return x + self.drop(self.mlp(self.ln2(x)))


class DecisionTransformer(nn.Module):
    """The network: token embeddings, causal transformer, action head (see the module docstring).

    Args:
        obs_dim: width of the flat observation (:func:`tracerl.policies.encoders.flat_dim`).
        action_space: Discrete or 1-d Box.
        config: the :class:`DTConfig` (context_len, embed_dim, n_layers, n_heads, dropout, condition_on_return).
        max_timestep: entries of the timestep embedding.
    """

    def __init__(self, obs_dim: int, action_space: spaces.Space[Any], config: DTConfig, max_timestep: int) -> None:
        super().__init__()
        config.validate()
        self.codec = ActionCodec(action_space)
        self.config = config
        self.obs_dim = obs_dim
        self.max_timestep = int(max_timestep)
        self.with_returns = bool(config.condition_on_return)
        self.tokens_per_step = 3 if self.with_returns else 2
        H = config.embed_dim
        self.embed_timestep = nn.Embedding(self.max_timestep, H)
        self.embed_state = nn.Linear(obs_dim, H)
        self.embed_return = nn.Linear(1, H) if self.with_returns else None
        self.embed_action = nn.Embedding(self.codec.n, H) if self.codec.discrete else nn.Linear(self.codec.dim, H)
        self.embed_ln = nn.LayerNorm(H)
        self.embed_drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(CausalBlock(H, config.n_heads, config.dropout) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(H)
        self.action_head = nn.Linear(H, self.codec.out_dim)

    def forward(self, states: Tensor, actions: Tensor, returns_to_go: Tensor, timesteps: Tensor,
                valid: Tensor) -> Tensor:
        """Predict the action of every step of the windows from its state token.

        Args (time-major, ``K`` steps of ``B`` windows; invalid steps are padding, never attended to):
            states: float ``[K, B, obs_dim]``.
            actions: int64 ``[K, B]`` (Discrete, indices) or float ``[K, B, A]`` (Box, in [-1, 1]).
            returns_to_go: float ``[K, B]`` (already divided by the return scale; ignored by BC).
            timesteps: int64 ``[K, B]`` episode timesteps.
            valid: bool ``[K, B]``.

        Returns:
            ``[K, B, n]`` action logits (Discrete) or ``[K, B, A]`` actions in [-1, 1] (Box, tanh).
        """
        K, B = valid.shape
        ts = timesteps.clamp(0, self.max_timestep - 1).transpose(0, 1)
        t_emb = self.embed_timestep(ts)
        s = self.embed_state(states.transpose(0, 1)) + t_emb
        a = self.embed_action(actions.transpose(0, 1)) + t_emb
        parts = [s, a]
        if self.with_returns:
            assert self.embed_return is not None
            parts.insert(0, self.embed_return(returns_to_go.transpose(0, 1).unsqueeze(-1)) + t_emb)
        n_tok = self.tokens_per_step
        x = torch.stack(parts, dim=2).reshape(B, K * n_tok, -1)
        x = self.embed_drop(self.embed_ln(x))
        N = K * n_tok
        key_valid = valid.transpose(0, 1).repeat_interleave(n_tok, dim=1)  # [B, N]
        causal = torch.ones(N, N, dtype=torch.bool, device=x.device).tril()
        allowed = causal[None] & key_valid[:, None, :]
        allowed = allowed | torch.eye(N, dtype=torch.bool, device=x.device)[None]  # padding rows attend to themselves
        allowed = allowed[:, None]
        for block in self.blocks:
            x = block(x, allowed)
        h = self.ln_f(x).reshape(B, K, n_tok, -1)[:, :, n_tok - 2]  # the state token of every step
        out = self.action_head(h)
        if not self.codec.discrete:
            out = torch.tanh(out)
        return out.transpose(0, 1)

    def loss(self, out: Tensor, actions: Tensor, valid: Tensor) -> Tensor:
        """Action loss over the valid steps: cross-entropy (Discrete) or mean squared error (Box)."""
        m = valid.reshape(-1)
        if self.codec.discrete:
            return F.cross_entropy(out.reshape(-1, out.shape[-1])[m], actions.reshape(-1)[m])
        return F.mse_loss(out.reshape(-1, out.shape[-1])[m], actions.reshape(-1, out.shape[-1])[m])


class SequencePolicy:
    """A trained Decision Transformer (or BC) acting with its context as explicit state.

    Args:
        model: the network.
        observation_space, action_space: the env's single spaces.
        return_scale: what returns-to-go were divided by in training.
        target_return: the default first return-to-go at evaluation (the best return of the training data).
        seed: seeds this policy's own sampling generator (``deterministic=False``).
    """

    def __init__(self, model: DecisionTransformer, observation_space: spaces.Space[Any],
                 action_space: spaces.Space[Any], return_scale: float, target_return: float, seed: int = 0) -> None:
        self.model = model.eval()
        self.observation_space = observation_space
        self.action_space = action_space
        self.return_scale = float(return_scale)
        self.target_return = float(target_return)
        self.config = model.config
        self.generator = torch.Generator().manual_seed(int(seed))

    @property
    def kind(self) -> str:
        """``"dt"`` (return-conditioned) or ``"bc"``."""
        return "dt" if self.model.with_returns else "bc"

    @property
    def context_len(self) -> int:
        return self.config.context_len

    def initial_state(self, batch_size: int) -> dict[str, Tensor]:
        """An empty context for ``batch_size`` episodes (every slot invalid)."""
        K, codec = self.context_len, self.model.codec
        actions = (torch.zeros(batch_size, K, dtype=torch.int64) if codec.discrete
                   else torch.zeros(batch_size, K, codec.dim))
        return {"states": torch.zeros(batch_size, K, self.model.obs_dim), "actions": actions,
                "returns_to_go": torch.zeros(batch_size, K), "timesteps": torch.zeros(batch_size, K, dtype=torch.int64),
                "valid": torch.zeros(batch_size, K, dtype=torch.bool)}

    @torch.no_grad()
    def predict(self, observation: Any, state: dict[str, Tensor] | None = None, episode_start: Any = None,
                deterministic: bool = True, prev_reward: Any = None,
                target_return: float | None = None) -> tuple[np.ndarray, dict[str, Tensor]]:
        """Act on one observation or a batch, carrying the context.

        Args:
            observation: one observation or a batch ``[B, ...]``.
            state: the state returned by the previous call (None: fresh episodes).
            episode_start: ``[B]`` bool, True where the observation starts an episode (its context is emptied and
                its return-to-go set to the target). Required whenever ``state`` is given.
            deterministic: the most likely action (Discrete) instead of a sample; Box actions are always the mean.
            prev_reward: ``[B]`` rewards received after the previous action; the return-to-go drops by it. Required
                (DT) on steps that do not start an episode.
            target_return: the return to condition on in episodes starting now (default :attr:`target_return`).

        Returns:
            ``(action, state)``; the state is a dict of batch-first tensors: ``states [B, K, obs_dim]``, ``actions
            [B, K(, A)]``, ``returns_to_go [B, K]`` (scaled), ``timesteps [B, K]``, ``valid [B, K]``.
        """
        from tracerl.policies.encoders import preprocess

        flat = preprocess(self.observation_space, observation)
        single = flat.dim() == 1  # one observation: preprocess added no batch dimension
        flat = flat.reshape(-1, self.model.obs_dim)
        B = flat.shape[0]
        if state is None:
            state = self.initial_state(B)
            starts = torch.ones(B, dtype=torch.bool) if episode_start is None else torch.as_tensor(
                np.asarray(episode_start, dtype=bool).reshape(B))
        else:
            if episode_start is None:
                raise ValueError("predict(): a state was given without episode_start; pass episode_start ([B] bool).")
            starts = torch.as_tensor(np.asarray(episode_start, dtype=bool).reshape(B))
            if state["valid"].shape[0] != B:
                raise ValueError(f"predict(): the state holds {state['valid'].shape[0]} episodes, got {B} observations.")
        if self.model.with_returns and prev_reward is None and not bool(starts.all()) and bool(state["valid"].any()):
            raise ValueError("predict(): a Decision Transformer needs prev_reward ([B] rewards after the previous "
                             "action) to update its return-to-go.")
        reward = torch.zeros(B) if prev_reward is None else torch.as_tensor(
            np.asarray(prev_reward, dtype=np.float32).reshape(B))
        target = self.target_return if target_return is None else float(target_return)
        new = {k: v.clone() for k, v in state.items()}
        new["valid"][starts] = False
        last_rtg, last_t = new["returns_to_go"][:, -1], new["timesteps"][:, -1]
        rtg = torch.where(starts, torch.full((B,), target / self.return_scale), last_rtg - reward / self.return_scale)
        t = torch.where(starts, torch.zeros(B, dtype=torch.int64), last_t + 1)
        for key in new:  # drop the oldest step, append the new one
            new[key] = torch.roll(new[key], -1, dims=1)
        new["states"][:, -1] = flat
        new["returns_to_go"][:, -1] = rtg
        new["timesteps"][:, -1] = t
        new["valid"][:, -1] = True
        new["actions"][:, -1] = 0
        out = self.model(new["states"].transpose(0, 1), new["actions"].transpose(0, 1),
                         new["returns_to_go"].transpose(0, 1), new["timesteps"].transpose(0, 1),
                         new["valid"].transpose(0, 1))[-1]
        codec = self.model.codec
        if codec.discrete:
            if deterministic:
                idx = out.argmax(-1)
            else:
                idx = torch.multinomial(torch.softmax(out, -1), 1, generator=self.generator).squeeze(-1)
            new["actions"][:, -1] = idx
            action = codec.decode(idx.numpy())
        else:
            new["actions"][:, -1] = out
            action = codec.decode(out.numpy())
        return (action[0] if single else action), new

    def evaluate(self, env: Any, n_episodes: int = 100, seed: int = 10_000, env_kwargs: dict[str, Any] | None = None,
                 n_envs: int = 16, deterministic: bool = True, target_return: float | None = None) -> Any:
        """Run ``n_episodes`` held-out episodes (conditioned on ``target_return``) and return a
        :class:`tracerl.evaluation.EvalResult` (returns, lengths, successes)."""
        from tracerl.evaluation import EvalResult

        from .recorder import PredictPolicy, collect_episodes

        old = self.target_return
        if target_return is not None:
            self.target_return = float(target_return)
        try:
            episodes, _, _ = collect_episodes(env, {"eval": (PredictPolicy(self, deterministic), n_episodes)},
                                              n_envs=n_envs, seed=seed, env_kwargs=env_kwargs)
        finally:
            self.target_return = old
        succ = [ep.success for ep in episodes]
        return EvalResult(np.array([ep.total_return for ep in episodes]), np.array([len(ep) for ep in episodes]),
                          np.array([float("nan") if s is None else float(s) for s in succ]))

    # ------------------------------------------------------------------------------------------ save / load

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the weights (safetensors) and the config, spaces and scales (JSON) to one checkpoint file."""
        from tracerl.io.checkpoint import save_checkpoint
        from tracerl.io.spaces import space_to_json

        meta = {"config": asdict(self.config), "observation_space": space_to_json(self.observation_space),
                "action_space": space_to_json(self.action_space), "obs_dim": self.model.obs_dim,
                "max_timestep": self.model.max_timestep, "return_scale": self.return_scale,
                "target_return": self.target_return}
        save_checkpoint(path, dict(self.model.state_dict()), meta, CHECKPOINT_KIND)

    @classmethod
    def load(cls, path: str | os.PathLike[str], seed: int = 0) -> "SequencePolicy":
        """Read a checkpoint written by :meth:`save` (verified; no code runs from the file)."""
        from tracerl.io.checkpoint import check_tensor_shapes, load_checkpoint, load_module_state
        from tracerl.io.spaces import space_from_json
        from tracerl.policies.encoders import flat_dim

        where = os.fspath(path)
        tensors, meta = load_checkpoint(path, kind=CHECKPOINT_KIND)
        try:
            config = DTConfig.from_dict(dict(meta["config"]), where=f"{where}: config")
            config.validate()
            obs_space = space_from_json(meta["observation_space"])
            act_space = space_from_json(meta["action_space"])
            obs_dim, max_t = int(meta["obs_dim"]), int(meta["max_timestep"])
            return_scale, target = float(meta["return_scale"]), float(meta["target_return"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"malformed metadata: {exc}", path=where, entry="meta") from exc
        if obs_dim != flat_dim(obs_space) or not 1 <= max_t <= 1_000_000:
            raise CheckpointError(f"obs_dim={obs_dim} / max_timestep={max_t} do not fit the observation space",
                                  path=where, entry="meta")
        model = DecisionTransformer(obs_dim, act_space, config, max_t)
        check_tensor_shapes(model.state_dict(), tensors, path)
        load_module_state(model, tensors, path)
        return cls(model, obs_space, act_space, return_scale, target, seed=seed)


__all__ = ["CHECKPOINT_KIND", "ActionCodec", "CausalBlock", "DTConfig", "DecisionTransformer", "SequencePolicy"]
