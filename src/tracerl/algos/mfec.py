"""Model-Free Episodic Control (Blundell et al. 2016, "Model-Free Episodic Control"): ``algo="mfec"``.

One table per action maps a key (a fixed random projection of the torso's features) to the highest discounted
return seen after taking that action there::

    key(o_t)   = R phi(o_t),   R ~ N(0, 1 / key_dim) fixed; phi the torso (encoder -> memory core) at its random
                 initialization, never trained
    Q(s, a)    = the table's value for an exactly matching key, else the mean of the k nearest values
                 (0 for an empty table)
    a_t        = argmax_a Q (ties at random), uniform with probability epsilon
    at the episode's end, for every step: R_t = sum_{j >= t} gamma^(j - t) r_j  (truncated episodes add
    gamma^(T - t) max_a Q of the final observation's key), and Q(key_t, a_t) <- max(Q(key_t, a_t), R_t)
    (appended when new; the least recently used entry is replaced when the table is full)

The paper's MFEC projects the raw observation: ``memory="mlp", num_layers=0, encoder_hidden=()`` makes the torso
the identity (plus the previous action and reward when ``use_prev_action`` / ``use_prev_reward``). A recurrent
core gives keys from a random recurrent network's state (a fixed reservoir), so MFEC can tell apart histories
on POMDPs. Not implemented: the paper's VAE embedding (a learned projection).

MFEC takes no gradient steps: its replay is kept only because the off-policy learner it shares with NEC keeps
one (make ``buffer_size`` small). Discrete action spaces only (ConfigError otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import torch
from torch import Tensor, nn

from ..config_checks import NON_NEGATIVE, Range
from ..policies.policy import PolicyConfig
from .dnd import DND
from .nec import EpisodicControl
from .offpolicy import OffPolicyConfig
from .recurrent_nets import ActionCodec


@dataclass
class MFECConfig(OffPolicyConfig):
    """Hyperparameters of MFEC (OffPolicyConfig's fields are kept for the shared learner; MFEC uses ``n_envs``,
    ``gamma``, ``buffer_size`` and nothing else of them)."""

    key_dim: int = 32
    """Width of the random projection (the keys)."""
    dnd_capacity: int = 10_000
    """Entries per action's table; the least recently used one is replaced when it is full."""
    num_neighbours: int = 11
    """k: nearest neighbours averaged for a key not in the table."""
    match_threshold: float = 1e-6
    """A key within this squared distance of a stored key of the same action is that key."""
    epsilon: float = 0.1
    """Probability of a uniform action of the training actors (and of predict(deterministic=False))."""
    buffer_size: int = 2_000
    """Replay capacity in rows (not sampled by MFEC; kept so checkpoints and resume work as for NEC)."""
    learning_starts: int = 0
    """Not used by MFEC (it acts with its tables from the first step and never takes a gradient step)."""

    _field_ranges = {
        "key_dim": Range(1, 65_536), "dnd_capacity": Range(1, 10**7), "num_neighbours": Range(1, 10_000),
        "match_threshold": NON_NEGATIVE, "epsilon": Range(0, 1),
    }


class RandomProjection(nn.Module):
    """``x [..., in_dim] -> x @ R`` with a fixed ``R [in_dim, out_dim] ~ N(0, 1 / out_dim)`` (a buffer, saved)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.register_buffer("matrix", torch.randn(in_dim, out_dim) / out_dim**0.5)

    def forward(self, x: Tensor) -> Tensor:
        return x.to(self.matrix.dtype) @ self.matrix


class MFEC(EpisodicControl):
    """MFEC's fixed embedding and tables (arguments as :class:`~tracerl.algos.r2d2.R2D2`)."""

    name = "mfec"
    gradient_updates = False
    horizon = None

    def __init__(self, obs_dim: int, codec: ActionCodec, config: MFECConfig, policy_config: PolicyConfig,
                 memory_factory: Any = None, input_index: list[int] | None = None,
                 device: torch.device | str = "cpu", observation_space: gym.Space | None = None) -> None:
        super().__init__(obs_dim, codec, config, policy_config, memory_factory, input_index, device,
                         observation_space)
        self.torso.requires_grad_(False)
        self.key_dim = config.key_dim
        self.projection = RandomProjection(self.torso.output_dim, config.key_dim).to(self.device)
        self.dnd = DND(codec.n, config.dnd_capacity, config.key_dim, config.num_neighbours,
                       match_threshold=config.match_threshold, kernel="mean", write_rule="max").to(self.device)

    @property
    def uses_stored_state(self) -> bool:
        """MFEC never replays windows: the replay stores no state."""
        return False

    def keys(self, features: Tensor) -> Tensor:
        return self.projection(features)

    def modules(self) -> dict[str, nn.Module]:
        return {"q_torso": self.torso, "projection": self.projection}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {}

    def update(self, batch: Any) -> tuple[dict[str, float], Tensor | None]:
        """MFEC learns by its table writes only (never called by the episodic learner)."""
        return {"dnd_size": float(self.dnd.size.sum())}, None


__all__ = ["MFEC", "MFECConfig", "RandomProjection"]
