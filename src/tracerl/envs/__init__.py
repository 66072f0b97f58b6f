"""Environments: the delayed-cue memory task, the Passive/Active T-Maze and SAME_STEP vector-env construction.

Importing this package registers ``tracerl/CueDelay-v0``, ``tracerl/TMazePassive-v0`` and
``tracerl/TMazeActive-v0`` with gymnasium (see :data:`REGISTERED_ENV_IDS`).
"""

from tracerl.envs.bitflip import BitFlip
from tracerl.envs.count_window import CountWindow, CountWindowVectorEnv
from tracerl.envs.cue_delay import CueDelay, CueDelayVectorEnv, MemoryTaskEnv
from tracerl.envs.image_cue import ImageCueDelay, ImageCueDelayVectorEnv
from tracerl.envs.masking import MaskObservation
from tracerl.envs.registration import REGISTERED_ENV_IDS
from tracerl.envs.tmaze import TMaze, TMazeVectorEnv
from tracerl.envs.vector import get_autoreset_mode, make_vec_env

__all__ = [
    "BitFlip",
    "CountWindow",
    "CountWindowVectorEnv",
    "ImageCueDelay",
    "ImageCueDelayVectorEnv",
    "MaskObservation",
    "CueDelay",
    "CueDelayVectorEnv",
    "MemoryTaskEnv",
    "REGISTERED_ENV_IDS",
    "TMaze",
    "TMazeVectorEnv",
    "get_autoreset_mode",
    "make_vec_env",
]
