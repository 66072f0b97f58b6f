"""Algorithms that train memory policies on sequences."""

from .gae import compute_gae
from .ppo import PPO, PPOConfig, explained_variance
from .r2d2 import R2D2, R2D2Config
from .sac import SAC, SACConfig
from .td3 import TD3, TD3Config

ALGORITHMS = ("ppo", "a2c", "reinforce", "sac", "td3", "r2d2")
"""Algorithm names accepted by TraceRL(algo=...) and the CLI's --algo."""

__all__ = ["ALGORITHMS", "PPO", "PPOConfig", "R2D2", "R2D2Config", "SAC", "SACConfig", "TD3", "TD3Config",
           "compute_gae", "explained_variance"]
