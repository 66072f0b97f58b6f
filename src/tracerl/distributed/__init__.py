"""Env runners: PPO rollouts collected by several vector envs, in this process or as Ray actors.

``TraceRL(..., runners=N, runner_backend="ray", ray_address=None)`` (fields of
:class:`~tracerl.agent_config.MemoryAgentConfig`, also ``tracerl train`` flags) splits the ``n_envs`` sub-envs over
``N`` :class:`~tracerl.distributed.runner.EnvRunner` objects; :class:`~tracerl.distributed.group.RunnerGroup` stands
in for the collector and gathers their rollouts before every update (synchronous PPO).

Off-policy algorithms (R2D2, SAC, TD3, DRQN) with ``runners=N``: :mod:`tracerl.distributed.offpolicy` (asynchronous
runners, the sequence replay in its own actor: :mod:`tracerl.distributed.replay_server`).
"""

from .group import RunnerError, RunnerGroup, check_runner_setup
from .offpolicy import OffPolicyRunner, OffPolicyRunnerGroup, RunnerSettings
from .replay_server import ReplayServer
from .runner import EnvRunner, RunnerSpec
from .sampling import PerEnvSamplingPolicy, env_generators, sample_per_env

__all__ = ["EnvRunner", "OffPolicyRunner", "OffPolicyRunnerGroup", "PerEnvSamplingPolicy", "ReplayServer",
           "RunnerError", "RunnerGroup", "RunnerSettings", "RunnerSpec", "check_runner_setup", "env_generators",
           "sample_per_env"]
