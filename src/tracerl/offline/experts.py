"""Scripted policies for tracerl's memory tasks, with their memory as explicit state (recorder callables).

Each is ``fn(obs [B, ...], state, episode_start [B]) -> (actions [B], state)``; ``state`` is a dict of numpy arrays
(None on the first call). ``expert`` policies always succeed; ``wrong`` ones remember the cue and answer the
opposite side, always failing: mixed with ``random`` they make datasets whose majority action is wrong, where
behaviour cloning must fail and return-conditioning must not.

Before the decision both act without regard to the cue (CueDelay: action 0 until the decision flag; T-Maze: right
along the corridor), so their earlier actions do not carry the cue: a sequence model learning from them must
recall the cue's observation itself, not copy its previous action.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from tracerl.envs.cue_delay import CUE_FLAG, DECISION_FLAG, SIGNAL

TMAZE_RIGHT, TMAZE_UP, TMAZE_DOWN = 0, 1, 3
"""T-Maze actions used by the scripted policies."""


def _cue(obs: np.ndarray, state: Any, seen: np.ndarray) -> np.ndarray:
    cue = np.zeros(len(obs), dtype=np.float32) if state is None else np.array(state["cue"], dtype=np.float32)
    cue[seen] = obs[seen, SIGNAL]
    return cue


def _cue_delay(obs: Any, state: Any, sign: float) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    o = np.asarray(obs, dtype=np.float32).reshape(-1, 3)
    cue = _cue(o, state, o[:, CUE_FLAG] > 0.5)
    answer = (sign * cue > 0).astype(np.int64)
    return np.where(o[:, DECISION_FLAG] > 0.5, answer, 0).astype(np.int64), {"cue": cue}


def cue_delay_expert(obs: Any, state: Any, episode_start: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """CueDelay: remember the cue of the first observation (cue flag set); action 0 until the decision flag, then
    the cue's answer."""
    return _cue_delay(obs, state, 1.0)


def cue_delay_wrong(obs: Any, state: Any, episode_start: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """CueDelay: as the expert, but answer the opposite of the cue at the decision (always fails)."""
    return _cue_delay(obs, state, -1.0)


def _tmaze(obs: Any, state: Any, episode_start: Any, sign: float) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    o = np.asarray(obs, dtype=np.float32).reshape(-1, 2)
    starts = np.ones(len(o), dtype=bool) if state is None else np.asarray(episode_start, dtype=bool).reshape(-1)
    cue = np.zeros(len(o), dtype=np.float32) if state is None else np.array(state["cue"], dtype=np.float32)
    cue[starts] = o[starts, 1]  # passive T-Maze: the first observation is the oracle cell showing the cue
    at_junction = o[:, 0] > 0.5
    turn = np.where(sign * cue > 0, TMAZE_UP, TMAZE_DOWN)
    return np.where(at_junction, turn, TMAZE_RIGHT).astype(np.int64), {"cue": cue}


def tmaze_passive_expert(obs: Any, state: Any, episode_start: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Passive T-Maze: read the cue on the first observation, walk right to the junction, turn to the cue's side."""
    return _tmaze(obs, state, episode_start, 1.0)


def tmaze_passive_wrong(obs: Any, state: Any, episode_start: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Passive T-Maze: as the expert, but turn to the other side (reaches the junction on time, always fails)."""
    return _tmaze(obs, state, episode_start, -1.0)


EXPERTS: dict[str, dict[str, Callable[..., Any]]] = {
    "tracerl/CueDelay-v0": {"expert": cue_delay_expert, "wrong": cue_delay_wrong},
    "tracerl/TMazePassive-v0": {"expert": tmaze_passive_expert, "wrong": tmaze_passive_wrong},
}
"""Scripted policies by env id and name (the names ``tracerl record --policy NAME=EPISODES`` accepts)."""


__all__ = ["EXPERTS", "cue_delay_expert", "cue_delay_wrong", "tmaze_passive_expert", "tmaze_passive_wrong"]
