"""Algorithms that train memory policies on sequences."""

from .gae import compute_gae
from .ppo import PPO, PPOConfig, explained_variance

ALGORITHMS = ("ppo", "a2c", "reinforce")
"""Algorithm names accepted by TraceRL(algo=...) and the CLI's --algo."""

__all__ = ["ALGORITHMS", "PPO", "PPOConfig", "compute_gae", "explained_variance"]
