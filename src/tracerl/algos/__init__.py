"""Algorithms that train memory policies on sequences."""

from .drqn import DRQNConfig
from .gae import compute_gae
from .ppo import PPO, PPOConfig, explained_variance
from .r2d2 import R2D2, R2D2Config
from .sac import SAC, SACConfig
from .td3 import TD3, TD3Config
from .registry import AlgoSpec, available_algos, get_algo, register_algo

__all__ = ["AlgoSpec", "available_algos", "get_algo", "register_algo", "DRQNConfig", "PPO", "PPOConfig", "R2D2",
           "R2D2Config", "SAC", "SACConfig", "TD3", "TD3Config",
           "compute_gae", "explained_variance"]
