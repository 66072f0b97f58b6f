"""Environments: tracerl's memory tasks (natively batched) and SAME_STEP vector-env construction.

Importing this package registers with gymnasium (the list is :data:`REGISTERED_ENV_IDS`):
``tracerl/CueDelay-v0`` (delayed cue), ``tracerl/ImageCueDelay-v0`` (the same, rendered as small images),
``tracerl/TMazePassive-v0`` and ``tracerl/TMazeActive-v0``, ``tracerl/CountWindow-v0`` (count over a window),
``tracerl/BitFlip-v0`` (goal-conditioned, for HER), ``tracerl/RewriteMaze-v0`` (several cues per episode, each
rewriting the last), and the masked-velocity controls ``tracerl/CartPoleNoVel-v0``
and ``tracerl/PendulumNoVel-v0`` (CartPole and Pendulum with the velocities masked out, gymnasium's envs wrapped),
and ``tracerl/MaskedCartPole-v0`` (CartPole without velocities, natively batched, ``info["success"]`` = the cap reached).
"""

from tracerl.envs.bitflip import BitFlip
from tracerl.envs.count_window import CountWindow, CountWindowVectorEnv
from tracerl.envs.cue_delay import CueDelay, CueDelayVectorEnv, MemoryTaskEnv
from tracerl.envs.image_cue import ImageCueDelay, ImageCueDelayVectorEnv
from tracerl.envs.masked_cartpole import MaskedCartPole, MaskedCartPoleVectorEnv
from tracerl.envs.masking import MaskObservation
from tracerl.envs.registration import REGISTERED_ENV_IDS
from tracerl.envs.rewrite_maze import RewriteMaze, RewriteMazeVectorEnv
from tracerl.envs.tmaze import TMaze, TMazeVectorEnv
from tracerl.envs.vector import get_autoreset_mode, make_vec_env

__all__ = [
    "BitFlip",
    "CountWindow",
    "CountWindowVectorEnv",
    "ImageCueDelay",
    "ImageCueDelayVectorEnv",
    "MaskObservation",
    "MaskedCartPole",
    "MaskedCartPoleVectorEnv",
    "CueDelay",
    "CueDelayVectorEnv",
    "MemoryTaskEnv",
    "REGISTERED_ENV_IDS",
    "RewriteMaze",
    "RewriteMazeVectorEnv",
    "TMaze",
    "TMazeVectorEnv",
    "get_autoreset_mode",
    "make_vec_env",
]
