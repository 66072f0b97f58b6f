"""Gymnasium registration of tracerl's environments (idempotent: importing twice registers once).

After ``import tracerl.envs``::

    gymnasium.make("tracerl/CueDelay-v0", delay=8, difficulty=1)                 # a CueDelay
    gymnasium.make_vec("tracerl/CueDelay-v0", num_envs=8,
                       vectorization_mode="vector_entry_point", delay=4)        # a CueDelayVectorEnv
"""

from __future__ import annotations

import gymnasium

CUE_DELAY_ID = "tracerl/CueDelay-v0"

REGISTERED_ENV_IDS: list[str] = [CUE_DELAY_ID]
"""Every env id tracerl registers with gymnasium."""


def register_envs() -> None:
    """Register tracerl's env ids with gymnasium; ids already in the registry are left untouched."""
    if CUE_DELAY_ID not in gymnasium.registry:
        gymnasium.register(
            id=CUE_DELAY_ID,
            entry_point="tracerl.envs.cue_delay:CueDelay",
            vector_entry_point="tracerl.envs.cue_delay:CueDelayVectorEnv",
        )


register_envs()
