"""tracerl: reinforcement learning with memory."""

__version__ = "0.1.0"

from .agent import TraceRL  # noqa: E402
from .agent_config import MemoryAgentConfig  # noqa: E402
from .algos import PPO, PPOConfig  # noqa: E402
from .algos.auxiliary import (  # noqa: E402
    AuxModule,
    ConfidenceAuxModule,
    CueAuxModule,
    PredictiveAuxModule,
    register_aux_module,
)
from .envs import CueDelay, CueDelayVectorEnv, MemoryTaskEnv, make_vec_env  # noqa: E402
from .errors import (  # noqa: E402
    CheckpointError,
    ConfigError,
    EnvCrashError,
    EnvOutputError,
    NonFiniteError,
    TraceRLError,
    UnsupportedSpaceError,
)
from .memory import MemoryCore, available_memories, make_memory, register_memory  # noqa: E402
from .memory.strategic import StrategicMemoryBuffer  # noqa: E402
from .policies import PolicyConfig, RecurrentActorCritic, StrategicMemoryTransformerPolicy  # noqa: E402

__all__ = [
    "AuxModule",
    "CheckpointError",
    "ConfidenceAuxModule",
    "CueAuxModule",
    "MemoryAgentConfig",
    "PredictiveAuxModule",
    "StrategicMemoryBuffer",
    "StrategicMemoryTransformerPolicy",
    "register_aux_module",
    "ConfigError",
    "CueDelay",
    "CueDelayVectorEnv",
    "EnvCrashError",
    "EnvOutputError",
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


def __getattr__(name: str) -> object:  # lazy: ``from tracerl import AgentPerformanceBenchmark`` loads tracerl.bench
    if name == "AgentPerformanceBenchmark":
        from .bench.seed_api import AgentPerformanceBenchmark
        return AgentPerformanceBenchmark
    raise AttributeError(f"module 'tracerl' has no attribute {name!r}")
