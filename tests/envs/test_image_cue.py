"""The delayed cue as small images: CueDelay's episodes, image observations, oracle 1, memoryless at chance."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import tracerl.envs  # noqa: F401  (registers the ids)
from tracerl.envs import REGISTERED_ENV_IDS, CueDelay, CueDelayVectorEnv, make_vec_env
from tracerl.envs.image_cue import ImageCueDelay, ImageCueDelayVectorEnv, render_images
from tracerl.errors import ConfigError
from tracerl.policies.encoders import is_image_space

ID = "tracerl/ImageCueDelay-v0"


def _decode(images: np.ndarray) -> np.ndarray:
    """The signal each image shows: +1 (horizontal bar), -1 (vertical bar) or 0, from ``[N, S, S, 1]`` images."""
    s = images.shape[1]
    mid = s // 2
    horizontal = (images[:, mid, 1 : s - 1, 0] == 255).all(axis=1) & (images[:, 1, mid, 0] == 0)
    vertical = (images[:, 1 : s - 1, mid, 0] == 255).all(axis=1) & (images[:, mid, 1, 0] == 0)
    return np.where(horizontal, 1, np.where(vertical, -1, 0))


def _run(vec: ImageCueDelayVectorEnv, policy, episodes: int, seed: int) -> float:
    """Success rate of ``policy(obs, first_signal) -> actions`` over at least ``episodes`` finished episodes."""
    obs, _ = vec.reset(seed=seed)
    remembered = _decode(obs)
    wins, ended = 0, 0
    while ended < episodes:
        obs, _, terminated, _, infos = vec.step(policy(obs, remembered))
        if terminated.any():
            wins += int(infos["success"][terminated].sum())
            ended += int(terminated.sum())
            remembered = np.where(terminated, _decode(obs), remembered)
    return wins / ended


def test_passes_gymnasium_env_checker_and_is_an_image_space() -> None:
    env = ImageCueDelay(delay=3, difficulty=1, size=8)
    check_env(env, skip_render_check=True)
    assert env.observation_space == gymnasium.spaces.Box(0, 255, (8, 8, 1), np.uint8)
    assert is_image_space(env.observation_space)


def test_registered_id_makes_the_single_and_the_native_batched_env() -> None:
    assert ID in REGISTERED_ENV_IDS
    made = gymnasium.make(ID, delay=4, size=12)
    assert isinstance(made.unwrapped, ImageCueDelay) and (made.unwrapped.delay, made.unwrapped.size) == (4, 12)
    vec = make_vec_env(ID, n_envs=3, seed=0, env_kwargs={"delay": 4, "size": 12})
    assert isinstance(vec, ImageCueDelayVectorEnv) and vec.single_observation_space.shape == (12, 12, 1)
    assert isinstance(ImageCueDelay(delay=2, size=5).batched(2), ImageCueDelayVectorEnv)
    assert ImageCueDelay(delay=2, size=5).batched(2).size == 5


@pytest.mark.parametrize("difficulty", [0, 1])
def test_episodes_are_cue_delays_rendered_as_images(difficulty: int) -> None:
    image, plain = ImageCueDelay(delay=5, difficulty=difficulty), CueDelay(delay=5, difficulty=difficulty)
    rng = np.random.default_rng(difficulty)
    for episode in range(6):
        obs, info = image.reset(seed=episode)
        vec, plain_info = plain.reset(seed=episode)
        assert info == plain_info
        for _ in range(5):
            np.testing.assert_array_equal(obs, render_images(vec[None], 8)[0])
            assert obs.dtype == np.uint8 and obs.shape == (8, 8, 1)
            action = int(rng.integers(0, 2))
            obs, reward, term, trunc, info = image.step(action)
            vec, p_reward, p_term, p_trunc, p_info = plain.step(action)
            assert (reward, term, trunc, info) == (p_reward, p_term, p_trunc, p_info)
        assert term and not obs.any()  # the terminal observation is blank


def test_the_cue_is_drawn_on_the_first_image_only_with_its_flag() -> None:
    env = ImageCueDelay(delay=4, difficulty=0, size=8)
    firsts = {}
    for seed in range(12):
        obs, info = env.reset(seed=seed)
        firsts[info["cue"]] = obs
        assert _decode(obs[None])[0] == info["cue"] and obs[0, 0, 0] == 255
        later = [env.step(0)[0] for _ in range(3)]
        assert all(not o[:-1, :-1].any() for o in later[:2])  # blank after the cue (difficulty 0)
    assert set(firsts) == {-1, 1} and not np.array_equal(firsts[-1], firsts[1])


def test_distractors_are_drawn_like_the_cue_at_difficulty_1() -> None:
    env = ImageCueDelay(delay=40, difficulty=1)
    env.reset(seed=0)
    shown = [int(_decode(env.step(0)[0][None])[0]) for _ in range(38)]
    assert set(shown) == {-1, 1}


@pytest.mark.parametrize("delay", [2, 5, 16])
@pytest.mark.parametrize("difficulty", [0, 1])
def test_oracle_that_remembers_the_first_image_always_succeeds(delay: int, difficulty: int) -> None:
    vec = ImageCueDelayVectorEnv(16, delay=delay, difficulty=difficulty, size=8)
    success = _run(vec, lambda obs, cue: (cue > 0).astype(np.int64), episodes=200, seed=delay)
    assert success == 1.0


@pytest.mark.parametrize("delay", [2, 5])
def test_memoryless_policies_are_at_chance(delay: int) -> None:
    # The decision image does not depend on the cue, so no function of the current image beats chance ...
    vec = ImageCueDelayVectorEnv(64, delay=delay, difficulty=0, size=8)
    obs, infos = vec.reset(seed=1)
    for _ in range(delay - 1):
        obs, *_ = vec.step(np.zeros(64, np.int64))
    cues = infos["cue"]
    assert (cues == 1).any() and (cues == -1).any()
    assert all(np.array_equal(obs[i], obs[0]) for i in range(64))
    # ... and the best-looking one, answering the bar in view (1 if none), succeeds about half the time.
    success = _run(vec, lambda obs, cue: (_decode(obs) >= 0).astype(np.int64), episodes=800, seed=2)
    assert 0.42 < success < 0.58  # 800 episodes: sd 0.018


@pytest.mark.parametrize("difficulty", [0, 1])
def test_batched_env_equals_single_envs_with_same_seeds(difficulty: int) -> None:
    n, delay = 4, 3
    vec = ImageCueDelayVectorEnv(n, delay=delay, difficulty=difficulty, size=6)
    singles = [ImageCueDelay(delay=delay, difficulty=difficulty, size=6) for _ in range(n)]
    obs, infos = vec.reset(seed=7)
    np.testing.assert_array_equal(obs, np.stack([env.reset(seed=7 + i)[0] for i, env in enumerate(singles)]))
    rng = np.random.default_rng(3)
    for _ in range(3 * delay):
        actions = rng.integers(0, 2, size=n)
        obs, rewards, terminated, _, infos = vec.step(actions)
        for i, env in enumerate(singles):
            o, r, te, _, _ = env.step(int(actions[i]))
            assert (r, te) == (rewards[i], terminated[i])
            if te:
                np.testing.assert_array_equal(infos["final_obs"][i], o)
                o, _ = env.reset()
            np.testing.assert_array_equal(obs[i], o)
    assert obs.dtype == np.uint8 and obs.shape == (n, 6, 6, 1)


def test_state_capture_resumes_exactly_and_rejects_another_size() -> None:
    vec = ImageCueDelayVectorEnv(3, delay=4, difficulty=1)
    vec.reset(seed=0)
    vec.step(np.array([0, 1, 0]))
    arrays, state = vec.get_state()
    expected = [vec.step(np.array([1, 1, 0]))[0] for _ in range(6)]
    copy = ImageCueDelayVectorEnv(3, delay=4, difficulty=1)
    copy.set_state(arrays, state)
    for want in expected:
        np.testing.assert_array_equal(copy.step(np.array([1, 1, 0]))[0], want)
    with pytest.raises(ValueError, match="size"):
        ImageCueDelayVectorEnv(3, delay=4, difficulty=1, size=10).set_state(arrays, state)


@pytest.mark.faults("ImageCueDelay built with a bad image size | ConfigError naming size | nothing (before start)")
@pytest.mark.parametrize("size", [3, 0, 8.0, True])
def test_bad_size_is_a_config_error(size) -> None:
    with pytest.raises(ConfigError, match="size"):
        ImageCueDelay(size=size)
    with pytest.raises(ConfigError, match="size"):
        ImageCueDelayVectorEnv(2, size=size)


def test_is_a_cue_delay_vector_env_with_another_observation_space() -> None:
    vec = ImageCueDelayVectorEnv(2, delay=3)
    assert isinstance(vec, CueDelayVectorEnv)
    assert vec.observation_space.shape == (2, 8, 8, 1) and vec.observation_space.dtype == np.uint8


def test_make_vec_env_of_an_instance_uses_the_native_batched_env_with_its_parameters() -> None:
    vec = make_vec_env(ImageCueDelay(delay=5, difficulty=1, size=6), n_envs=4)
    assert isinstance(vec, ImageCueDelayVectorEnv) and vec.num_envs == 4
    assert (vec.delay, vec.difficulty, vec.size) == (5, 1, 6)
    obs, _ = vec.reset(seed=0)
    assert obs.shape == (4, 6, 6, 1) and obs.dtype == np.uint8


def test_image_cue_and_bitflip_are_exported_from_tracerl_envs() -> None:
    import tracerl.envs as envs
    from tracerl.envs.bitflip import BitFlip

    assert envs.ImageCueDelay is ImageCueDelay and envs.ImageCueDelayVectorEnv is ImageCueDelayVectorEnv
    assert envs.BitFlip is BitFlip
    assert {"ImageCueDelay", "ImageCueDelayVectorEnv", "BitFlip"} <= set(envs.__all__)
