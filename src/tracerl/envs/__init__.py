"""Environments: the delayed-cue memory task and SAME_STEP vector-env construction.

Importing this package registers ``tracerl/CueDelay-v0`` with gymnasium (see :data:`REGISTERED_ENV_IDS`).
"""

from tracerl.envs.cue_delay import CueDelay, CueDelayVectorEnv, MemoryTaskEnv
from tracerl.envs.registration import REGISTERED_ENV_IDS
from tracerl.envs.vector import get_autoreset_mode, make_vec_env

__all__ = [
    "CueDelay",
    "CueDelayVectorEnv",
    "MemoryTaskEnv",
    "REGISTERED_ENV_IDS",
    "get_autoreset_mode",
    "make_vec_env",
]
