"""DRQN (Hausknecht & Stone 2015, "Deep Recurrent Q-Learning for Partially Observable MDPs"): ``algo="drqn"``.

DRQN is R2D2's algorithm (:class:`~tracerl.algos.r2d2.R2D2`, same networks, replay, collector and learner) with
the settings of :data:`DRQN_SETTINGS`; :class:`DRQNConfig` is :class:`~tracerl.algos.r2d2.R2D2Config` with those
defaults. Every other R2D2 field stays available (a DRQN with double Q is ``double_q=True``)::

    TraceRL(env="tracerl/CueDelay-v0", env_kwargs={"delay": 4}, algo="drqn", target_update_interval=100)
    TraceRL(..., algo="drqn", always_sample_from_initial_state=True, seq_len=64)   # sequential updates
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .r2d2 import R2D2Config

DRQN_SETTINGS: dict[str, Any] = {
    "zero_initial_state": True, "burn_in": 0, "state_stride": 1, "n_step": 1, "value_rescaling": False,
    "double_q": False, "dueling": False, "target_update_interval": 10_000, "epsilon": 0.1, "epsilon_alpha": 0.0,
    "seq_len": 10,
}
"""The R2D2Config fields whose defaults DRQN changes, and DRQN's values (checked against :class:`DRQNConfig`)."""


@dataclass
class DRQNConfig(R2D2Config):
    """Hyperparameters of DRQN: R2D2's config with DRQN's defaults. How DRQN differs from R2D2 in tracerl:

    ========================  =====================================  ===========================================
    field                     R2D2 (``algo="r2d2"``)                 DRQN (``algo="drqn"``)
    ========================  =====================================  ===========================================
    ``zero_initial_state``    False: each window starts from the     True: each window starts from the core's
                              state stored in the replay when its    initial state (zeros for an RNN); the replay
                              steps were collected                   stores no state ("bootstrapped random
                                                                     updates")
    ``burn_in``               tracerl's default 0; R2D2's paper 40   0: no burn-in (a burn-in, if set, starts
                              steps replayed from the stored state   from zeros: R2D2's "zero state" variant)
    ``state_stride``          where states are stored (and windows   1: a window may start at any step of an
                              start): gcd(burn_in, seq_len)          episode
    ``n_step``                5-step returns                         1: one-step DQN targets
    ``value_rescaling``       True: h(x) = sign(x)(sqrt(|x|+1)-1)    False: plain values
                              + eps x on the targets
    ``double_q``              True: online argmax, target value      False: ``max_a Qbar`` (DQN)
    ``dueling``               True: dueling head                     False: one linear Q head (DRQN's)
    ``target_update_interval``  100 gradient steps (tracerl's R2D2)  10,000 (DQN's and DRQN's period); set it
                                                                     lower for short runs (e.g. 100)
    ``epsilon`` / ``epsilon_alpha``  per-actor epsilon_i =           one epsilon 0.1 for every actor (DRQN's
                              0.4^(1 + 7 i / (N - 1)) (Ape-X)        final rate; it anneals it from 1.0)
    ``seq_len``               16 training steps                      10 (DRQN unrolls 10 steps)
    ========================  =====================================  ===========================================

    Whole-episode "bootstrapped sequential updates" are ``always_sample_from_initial_state=True`` with a
    ``seq_len`` of at least the longest episode: every window begins at an episode's first step and covers it.
    Not reproduced from the paper: its Adadelta optimizer (tracerl uses Adam, ``learning_rate``) and its epsilon
    annealing over the first million frames (the ``learning_starts`` random steps come first instead). A
    window that starts in mid-episode from zeros cannot see what came before it, so DRQN with random updates
    learns only dependencies shorter than ``seq_len``: longer ones need sequential updates (or R2D2's stored
    state).
    """

    zero_initial_state: bool = True
    burn_in: int = 0
    state_stride: int | None = 1
    n_step: int = 1
    value_rescaling: bool = False
    double_q: bool = False
    dueling: bool = False
    target_update_interval: int = 10_000
    epsilon: float = 0.1
    epsilon_alpha: float = 0.0
    seq_len: int = 10


__all__ = ["DRQNConfig", "DRQN_SETTINGS"]
