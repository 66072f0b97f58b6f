"""tracerl: reinforcement learning with memory."""

__version__ = "0.1.0"

from .agent import TraceRL  # noqa: E402
from .algos import PPO, PPOConfig  # noqa: E402
from .envs import CueDelay, CueDelayVectorEnv, MemoryTaskEnv, make_vec_env  # noqa: E402
from .errors import CheckpointError, ConfigError, NonFiniteError, TraceRLError, UnsupportedSpaceError  # noqa: E402
from .memory import MemoryCore, available_memories, make_memory, register_memory  # noqa: E402
from .policies import PolicyConfig, RecurrentActorCritic  # noqa: E402

__all__ = [
    "CheckpointError",
    "ConfigError",
    "CueDelay",
    "CueDelayVectorEnv",
    "MemoryCore",
    "MemoryTaskEnv",
    "NonFiniteError",
    "PPO",
    "PPOConfig",
    "PolicyConfig",
    "RecurrentActorCritic",
    "TraceRL",
    "TraceRLError",
    "UnsupportedSpaceError",
    "__version__",
    "available_memories",
    "make_memory",
    "make_vec_env",
    "register_memory",
]
