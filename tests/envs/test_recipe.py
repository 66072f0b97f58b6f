"""What rebuilds an env passed as an object: a registered id and its kwargs when knowable, None otherwise."""

from __future__ import annotations

import functools

import gymnasium as gym
import numpy as np
import pytest

from tracerl.envs import BitFlip, CountWindow, CueDelay, MemoryTaskEnv, TMaze, make_vec_env
from tracerl.envs.image_cue import ImageCueDelay
from tracerl.envs.recipe import EnvRecipe, env_recipe


@pytest.mark.parametrize("make, expected", [
    (lambda: gym.make("tracerl/CueDelay-v0", delay=4, difficulty=1),
     EnvRecipe("tracerl/CueDelay-v0", {"delay": 4, "difficulty": 1})),
    (lambda: gym.make("tracerl/CueDelay-v0", delay=4, render_mode="ansi"),
     EnvRecipe("tracerl/CueDelay-v0", {"delay": 4})),
    (lambda: gym.make("tracerl/TMazeActive-v0", corridor_length=3),
     EnvRecipe("tracerl/TMazeActive-v0", {"active": True, "corridor_length": 3})),
    (lambda: gym.make("CartPole-v1"), EnvRecipe("CartPole-v1", {})),
    (lambda: gym.make("tracerl/PendulumNoVel-v0"), EnvRecipe("tracerl/PendulumNoVel-v0", {})),  # own wrapper
    (lambda: gym.make_vec("tracerl/CueDelay-v0", num_envs=2, vectorization_mode="vector_entry_point", delay=5),
     EnvRecipe("tracerl/CueDelay-v0", {"delay": 5})),
    (lambda: gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync"), EnvRecipe("CartPole-v1", {})),
    (lambda: make_vec_env("tracerl/CartPoleNoVel-v0", n_envs=2), EnvRecipe("tracerl/CartPoleNoVel-v0", {})),
    (lambda: gym.make("CartPole-v1", render_mode="rgb_array_list"), EnvRecipe("CartPole-v1", {})),
    (lambda: MemoryTaskEnv(delay=np.int64(4), difficulty=1),
     EnvRecipe("tracerl/CueDelay-v0", {"delay": 4, "difficulty": 1})),
    (lambda: ImageCueDelay(delay=3, size=6),
     EnvRecipe("tracerl/ImageCueDelay-v0", {"delay": 3, "difficulty": 0, "size": 6})),
    (lambda: TMaze(corridor_length=3, active=True),
     EnvRecipe("tracerl/TMazeActive-v0", {"corridor_length": 3, "active": True, "goal_reward": 1.0, "penalty": None,
                                          "distract_reward": 0.0})),
    (lambda: TMaze(corridor_length=3),
     EnvRecipe("tracerl/TMazePassive-v0", {"corridor_length": 3, "active": False, "goal_reward": 1.0, "penalty": None,
                                           "distract_reward": 0.0})),
    (lambda: CountWindow(horizon=3, p=0.25),
     EnvRecipe("tracerl/CountWindow-v0", {"horizon": 3, "p": 0.25, "episode_length": 2000, "mode": "count_input"})),
    (lambda: BitFlip(n_bits=4), EnvRecipe("tracerl/BitFlip-v0", {"n_bits": 4, "horizon": None})),
    (lambda: CueDelay, EnvRecipe("tracerl/CueDelay-v0", {})),
    (lambda: functools.partial(CueDelay, delay=4), EnvRecipe("tracerl/CueDelay-v0", {"delay": 4})),
    (lambda: functools.partial(gym.make, "tracerl/CueDelay-v0", delay=4),
     EnvRecipe("tracerl/CueDelay-v0", {"delay": 4})),
])
def test_a_registered_or_tracerl_env_object_records_its_id_and_kwargs(make, expected):
    recipe = env_recipe(make())
    assert recipe == expected
    rebuilt = gym.make(recipe.env_id, **recipe.env_kwargs)  # the recipe builds the same task
    assert rebuilt.spec.id == expected.env_id


class _Unregistered(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (3,))
    action_space = gym.spaces.Discrete(2)


class _MyCue(CueDelay):
    pass


@pytest.mark.parametrize("make", [
    lambda: (lambda: CueDelay(delay=4)),                                     # an arbitrary callable
    lambda: _Unregistered(),                                                 # an unregistered class
    lambda: _MyCue(delay=4),                                                 # a subclass of a tracerl env
    lambda: gym.wrappers.RecordEpisodeStatistics(CueDelay(delay=4)),         # a tracerl env wrapped by the user
    lambda: gym.wrappers.FlattenObservation(gym.make("CartPole-v1")),       # a made env wrapped by the user
    lambda: gym.make("CartPole-v1", max_episode_steps=50),                   # not an argument of the env
    lambda: gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync",
                         wrappers=[gym.wrappers.FlattenObservation]),         # sub-envs wrapped by the user
    lambda: functools.partial(CueDelay, 4),                                  # positional: not recorded
])
def test_an_env_object_tracerl_cannot_rebuild_has_no_recipe(make):
    assert env_recipe(make()) is None
