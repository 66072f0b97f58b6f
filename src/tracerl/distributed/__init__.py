"""Env runners: PPO rollouts collected by several vector envs, in this process or as Ray actors.

``TraceRL(..., runners=N, runner_backend="ray", ray_address=None)`` (fields of
:class:`~tracerl.agent_config.MemoryAgentConfig`, also ``tracerl train`` flags) splits the ``n_envs`` sub-envs over
``N`` :class:`~tracerl.distributed.runner.EnvRunner` objects; :class:`~tracerl.distributed.group.RunnerGroup` stands
in for the collector and gathers their rollouts before every update (synchronous PPO).
"""

from .group import RunnerError, RunnerGroup, check_runner_setup
from .runner import EnvRunner, RunnerSpec
from .sampling import PerEnvSamplingPolicy, env_generators, sample_per_env

__all__ = ["EnvRunner", "PerEnvSamplingPolicy", "RunnerError", "RunnerGroup", "RunnerSpec", "check_runner_setup",
           "env_generators", "sample_per_env"]
