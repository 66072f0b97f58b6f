"""Supervised sequence benchmarks that train any memory core outside RL (e.g. the copy task)."""

from . import copy_task
from .copy_task import *  # noqa: F403  (the public names are listed once, in copy_task.__all__)

__all__ = list(copy_task.__all__)
