"""The delayed-cue memory task seen through small images, as a single env and as a batched vector env.

Same episodes as :class:`~tracerl.envs.CueDelay` (same draws from the same seeds, same rewards, actions and
infos); only the observation differs. Each observation is a ``size x size`` single-channel ``uint8`` image
(``Box(0, 255, (size, size, 1), uint8)``, HWC, so :func:`tracerl.policies.encoders.is_image_space` holds)::

    signal +1 (the cue or a distractor): a horizontal bar, row size // 2, columns 1 .. size - 2, value 255
    signal -1:                           a vertical bar, column size // 2, rows 1 .. size - 2, value 255
    signal  0 (difficulty 0, after the cue): blank
    first observation (the cue):         the top-left pixel is also 255 (CueDelay's cue flag)
    decision observation (the last one): the bottom-right pixel is also 255 (CueDelay's decision flag)
    terminal observation:                all zeros

So the cue is visible only in the first image, and the rewarded action comes ``delay - 1`` steps later: a
memoryless policy is at chance (success 0.5), a policy that remembers the first image scores 1.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from tracerl.envs.cue_delay import CUE_FLAG, DECISION_FLAG, SIGNAL, CueDelay, CueDelayVectorEnv
from tracerl.errors import ConfigError

MIN_SIZE = 4
"""Smallest image side at which the two bars differ."""


def validate_size(size: Any) -> int:
    """Check the image side and return it as an int; raise :class:`ConfigError` naming it."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < MIN_SIZE:
        raise ConfigError(f"ImageCueDelay: size={size!r} is invalid; it must be an int >= {MIN_SIZE}.")
    return int(size)


def image_space(size: int) -> spaces.Box:
    """The single-env observation space ``Box(0, 255, (size, size, 1), uint8)``."""
    return spaces.Box(low=0, high=255, shape=(size, size, 1), dtype=np.uint8)


def signal_templates(size: int) -> np.ndarray:
    """The images of signals -1, 0 and +1 (without flag pixels): uint8 ``[3, size, size]``."""
    t = np.zeros((3, size, size), dtype=np.uint8)
    mid = size // 2
    t[0, 1 : size - 1, mid] = 255  # -1: vertical bar
    t[2, mid, 1 : size - 1] = 255  # +1: horizontal bar
    return t


def render_images(vectors: np.ndarray, size: int) -> np.ndarray:
    """CueDelay observations ``[N, 3]`` ([signal, cue_flag, decision_flag]) -> images uint8 ``[N, size, size, 1]``."""
    v = np.asarray(vectors, dtype=np.float32).reshape(-1, 3)
    images = signal_templates(size)[np.rint(v[:, SIGNAL]).astype(np.int64) + 1]
    images[:, 0, 0] = np.where(v[:, CUE_FLAG] > 0, 255, images[:, 0, 0])
    images[:, size - 1, size - 1] = np.where(v[:, DECISION_FLAG] > 0, 255, images[:, size - 1, size - 1])
    return images[..., None]


class ImageCueDelay(CueDelay):
    """:class:`~tracerl.envs.CueDelay` with ``size x size x 1`` uint8 image observations (see the module docstring).

    Args:
        delay: number of actions per episode (>= 1); only the last one is rewarded.
        difficulty: 0 blank images after the cue, 1 random +-1 distractor bars drawn like the cue.
        size: image side in pixels (>= 4).
        render_mode: None or ``"ansi"`` (a one-line text description, as CueDelay's).
    """

    def __init__(self, delay: int = 16, difficulty: int = 0, size: int = 8, render_mode: str | None = None) -> None:
        gymnasium.utils.RecordConstructorArgs.__init__(self, delay=delay, difficulty=difficulty, size=size,
                                                       render_mode=render_mode)  # before CueDelay's: the first call records
        self.size = validate_size(size)
        super().__init__(delay=delay, difficulty=difficulty, render_mode=render_mode)
        self.observation_space = image_space(self.size)

    def _observe(self) -> np.ndarray:  # type: ignore[override]
        """The image at index ``self._t``: uint8 ``[size, size, 1]`` (zeros once the episode is over)."""
        return render_images(super()._observe(), self.size)[0]

    def batched(self, num_envs: int) -> "ImageCueDelayVectorEnv":  # type: ignore[override]
        """``num_envs`` copies of this task as one :class:`ImageCueDelayVectorEnv`."""
        return ImageCueDelayVectorEnv(num_envs, delay=self.delay, difficulty=self.difficulty, size=self.size)


class ImageCueDelayVectorEnv(CueDelayVectorEnv):
    """``num_envs`` :class:`ImageCueDelay` episodes stepped with one numpy call; equal to N seeded single envs.

    Everything (seeding, SAME_STEP autoreset, infos, ``get_state``/``set_state``) is
    :class:`~tracerl.envs.CueDelayVectorEnv`'s; observations are uint8 ``[N, size, size, 1]`` and
    ``infos["final_obs"]`` holds final images.
    """

    _CONFIG_KEYS = ("delay", "difficulty", "size")

    def __init__(self, num_envs: int, delay: int = 16, difficulty: int = 0, size: int = 8) -> None:
        self.size = validate_size(size)
        super().__init__(num_envs, delay=delay, difficulty=difficulty)
        self._init_batched(self.num_envs, image_space(self.size), spaces.Discrete(2))

    def _observe(self) -> np.ndarray:
        """Images at each row's index: uint8 ``[N, size, size, 1]`` (zero images where the episode is over)."""
        return render_images(super()._observe(), self.size)

    def __repr__(self) -> str:
        return (f"ImageCueDelayVectorEnv(num_envs={self.num_envs}, delay={self.delay}, difficulty={self.difficulty}, "
                f"size={self.size})")


__all__ = ["ImageCueDelay", "ImageCueDelayVectorEnv", "image_space", "render_images", "signal_templates"]
