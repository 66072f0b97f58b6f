"""Gymnasium registration of tracerl's environments (idempotent: importing twice registers once).

After ``import tracerl.envs``::

    gymnasium.make("tracerl/CueDelay-v0", delay=8, difficulty=1)                 # a CueDelay
    gymnasium.make_vec("tracerl/CueDelay-v0", num_envs=8,
                       vectorization_mode="vector_entry_point", delay=4)        # a CueDelayVectorEnv
    gymnasium.make("tracerl/TMazePassive-v0", corridor_length=20)                  # a TMaze (active=False)
    gymnasium.make("tracerl/TMazeActive-v0", corridor_length=20)                   # a TMaze (active=True)
    gymnasium.make("tracerl/ImageCueDelay-v0", delay=4, size=8)                  # CueDelay as 8x8 uint8 images
    gymnasium.make("tracerl/BitFlip-v0", n_bits=12)                                # a BitFlip (goal env, HER)
    gymnasium.make("tracerl/RewriteMaze-v0", n_corridors=4, corridor_length=8)     # a RewriteMaze (cue rewritten)
    gymnasium.make("tracerl/MaskedCartPole-v0", max_steps=200)                     # CartPole seeing [x, theta]
"""

from __future__ import annotations

import gymnasium

CUE_DELAY_ID = "tracerl/CueDelay-v0"
COUNT_WINDOW_ID = "tracerl/CountWindow-v0"
PENDULUM_NO_VEL_ID = "tracerl/PendulumNoVel-v0"
CARTPOLE_NO_VEL_ID = "tracerl/CartPoleNoVel-v0"
LUNAR_LANDER_NO_VEL_ID = "tracerl/LunarLanderNoVel-v0"
TMAZE_PASSIVE_ID = "tracerl/TMazePassive-v0"
TMAZE_ACTIVE_ID = "tracerl/TMazeActive-v0"
IMAGE_CUE_DELAY_ID = "tracerl/ImageCueDelay-v0"
BIT_FLIP_ID = "tracerl/BitFlip-v0"
REWRITE_MAZE_ID = "tracerl/RewriteMaze-v0"
MASKED_CARTPOLE_ID = "tracerl/MaskedCartPole-v0"

REGISTERED_ENV_IDS: list[str] = [CUE_DELAY_ID, TMAZE_PASSIVE_ID, TMAZE_ACTIVE_ID]
"""Every env id tracerl registers with gymnasium."""
REGISTERED_ENV_IDS += [COUNT_WINDOW_ID, PENDULUM_NO_VEL_ID, CARTPOLE_NO_VEL_ID]
REGISTERED_ENV_IDS.append(IMAGE_CUE_DELAY_ID)
REGISTERED_ENV_IDS.append(BIT_FLIP_ID)  # the HER paper's bit flipping (a goal env, tracerl.envs.bitflip)
REGISTERED_ENV_IDS.append(REWRITE_MAZE_ID)  # several cues per episode, each rewrites the last (tracerl.envs.rewrite_maze)
REGISTERED_ENV_IDS.append(MASKED_CARTPOLE_ID)  # natively batched CartPole without velocities, success = the cap


def _box2d_available() -> bool:
    """Whether Box2D imports (LunarLanderNoVel is registered only then)."""
    try:
        import Box2D  # noqa: F401
    except ImportError:
        return False
    return True


if _box2d_available():
    REGISTERED_ENV_IDS.append(LUNAR_LANDER_NO_VEL_ID)


def register_envs() -> None:
    """Register tracerl's env ids with gymnasium; ids already in the registry are left untouched."""
    if CUE_DELAY_ID not in gymnasium.registry:
        gymnasium.register(
            id=CUE_DELAY_ID,
            entry_point="tracerl.envs.cue_delay:CueDelay",
            vector_entry_point="tracerl.envs.cue_delay:CueDelayVectorEnv",
        )
    if IMAGE_CUE_DELAY_ID not in gymnasium.registry:
        gymnasium.register(
            id=IMAGE_CUE_DELAY_ID,
            entry_point="tracerl.envs.image_cue:ImageCueDelay",
            vector_entry_point="tracerl.envs.image_cue:ImageCueDelayVectorEnv",
        )
    if COUNT_WINDOW_ID not in gymnasium.registry:
        gymnasium.register(
            id=COUNT_WINDOW_ID,
            entry_point="tracerl.envs.count_window:CountWindow",
            vector_entry_point="tracerl.envs.count_window:CountWindowVectorEnv",
        )
    for env_id, base_id, factory in (
        (PENDULUM_NO_VEL_ID, "Pendulum-v1", "pendulum_no_vel"),
        (CARTPOLE_NO_VEL_ID, "CartPole-v1", "cartpole_no_vel"),
        (LUNAR_LANDER_NO_VEL_ID, "LunarLander-v3", "lunar_lander_no_vel"),
    ):
        if env_id in REGISTERED_ENV_IDS and env_id not in gymnasium.registry:
            base = gymnasium.spec(base_id)
            gymnasium.register(
                id=env_id,
                entry_point=f"tracerl.envs.masking:{factory}",
                max_episode_steps=base.max_episode_steps,
                reward_threshold=base.reward_threshold,
            )
    if MASKED_CARTPOLE_ID not in gymnasium.registry:
        gymnasium.register(
            id=MASKED_CARTPOLE_ID,
            entry_point="tracerl.envs.masked_cartpole:MaskedCartPole",
            vector_entry_point="tracerl.envs.masked_cartpole:MaskedCartPoleVectorEnv",
        )
    if BIT_FLIP_ID not in gymnasium.registry:
        gymnasium.register(id=BIT_FLIP_ID, entry_point="tracerl.envs.bitflip:BitFlip")
    if REWRITE_MAZE_ID not in gymnasium.registry:
        gymnasium.register(
            id=REWRITE_MAZE_ID,
            entry_point="tracerl.envs.rewrite_maze:RewriteMaze",
            vector_entry_point="tracerl.envs.rewrite_maze:RewriteMazeVectorEnv",
        )
    for env_id, active in ((TMAZE_PASSIVE_ID, False), (TMAZE_ACTIVE_ID, True)):
        if env_id not in gymnasium.registry:
            gymnasium.register(
                id=env_id,
                entry_point="tracerl.envs.tmaze:TMaze",
                vector_entry_point="tracerl.envs.tmaze:TMazeVectorEnv",
                kwargs={"active": active},
            )


register_envs()
