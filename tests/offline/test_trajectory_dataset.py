"""Trajectory datasets: recorder round trips (episodes, flags, infos), Minari compatibility, checked reads."""

from __future__ import annotations

import json
from typing import Any

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces

pytest.importorskip("minari")
h5py = pytest.importorskip("h5py")

from tracerl.errors import ConfigError, DatasetError  # noqa: E402
from tracerl.offline import collect_episodes, experts, load_dataset, record, returns_to_go, write_dataset  # noqa: E402
from tracerl.offline.dataset import Episode  # noqa: E402

CUE = "tracerl/CueDelay-v0"


class Countdown(gymnasium.Env):
    """Episode length L in 2..6 drawn at reset; obs = [t, L] (or a Dict of them); terminated after L actions.

    Infos: reset {"t": 0, "length": L}; step {"t": t, "doubled": 2 * action} and, on the last step, {"success":
    action == 1}. With a TimeLimit of 4 the longer episodes are truncated instead.
    """

    def __init__(self, dict_obs: bool = False) -> None:
        self.dict_obs = dict_obs
        box = spaces.Box(0, 10, shape=(2,), dtype=np.float32)
        self.observation_space = spaces.Dict({"pos": box, "flag": spaces.Discrete(3)}) if dict_obs else box
        self.action_space = spaces.Discrete(2)

    def _obs(self) -> Any:
        o = np.array([self.t, self.L], dtype=np.float32)
        return {"pos": o, "flag": self.t % 3} if self.dict_obs else o

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        self.t, self.L = 0, int(self.np_random.integers(2, 7))
        return self._obs(), {"t": 0, "length": self.L}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        self.t += 1
        info: dict[str, Any] = {"t": self.t, "doubled": 2 * int(action)}
        terminated = self.t >= self.L
        if terminated:
            info["success"] = bool(action == 1)
        return self._obs(), float(action) + 0.5 * self.t, terminated, False, info


def _countdown(dict_obs: bool = False) -> gymnasium.Env:
    return gymnasium.wrappers.TimeLimit(Countdown(dict_obs), max_episode_steps=4)


def _assert_same(a: Any, b: Any) -> None:
    if isinstance(a, dict):
        assert set(a) == set(b)
        for k in a:
            _assert_same(a[k], b[k])
    else:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert np.asarray(a).dtype == np.asarray(b).dtype or np.asarray(a).dtype.kind == np.asarray(b).dtype.kind


def _assert_episodes_equal(mem: list[Episode], disk: list[Episode]) -> None:
    assert len(mem) == len(disk)
    for x, y in zip(mem, disk):
        _assert_same(x.observations, y.observations)
        _assert_same(x.actions, y.actions)
        np.testing.assert_array_equal(x.rewards, y.rewards)
        np.testing.assert_array_equal(x.terminations, y.terminations)
        np.testing.assert_array_equal(x.truncations, y.truncations)
        _assert_same(x.infos, y.infos)
        assert x.policy == y.policy


@pytest.mark.parametrize("dict_obs", [False, True])
def test_recorded_episodes_read_back_equal_with_flags_and_infos(tmp_path, dict_obs):
    policies = {"ones": (lambda obs, state, start: (np.ones(len(start), dtype=np.int64), None), 7),
                "random": ("random", 9)}
    episodes, obs_space, act_space = collect_episodes(lambda: _countdown(dict_obs), policies, n_envs=3, seed=5)
    assert sorted(ep.policy for ep in episodes) == ["ones"] * 7 + ["random"] * 9
    for ep in episodes:
        T = len(ep)
        pos = ep.observations["pos"] if dict_obs else ep.observations
        L = int(pos[0, 1])
        # the env's own story, checked independently of the recorder's bookkeeping
        assert T == min(L, 4)
        np.testing.assert_array_equal(pos[:, 0], np.arange(T + 1))
        assert ep.terminated == (L <= 4) and ep.truncated == (L >= 4)  # TimeLimit also truncates at L == 4
        assert not ep.terminations[:-1].any() and not ep.truncations[:-1].any()
        np.testing.assert_array_equal(ep.rewards, ep.actions + 0.5 * np.arange(1, T + 1))
        np.testing.assert_array_equal(ep.infos["t"], np.arange(T + 1))
        assert ep.infos["_t"].all()
        assert ep.infos["_length"].tolist() == [True] + [False] * T and ep.infos["length"][0] == L
        np.testing.assert_array_equal(ep.infos["doubled"][1:], 2 * ep.actions)
        assert not ep.infos["_doubled"][0]
        if ep.terminated:
            assert ep.infos["_success"].tolist() == [False] * T + [True]
            assert ep.success == bool(ep.actions[-1] == 1)
        else:
            assert ep.success is None
        if ep.policy == "ones":
            assert (ep.actions == 1).all()
    assert any(ep.truncated and not ep.terminated for ep in episodes)
    assert any(ep.terminated and not ep.truncated for ep in episodes)

    write_dataset(tmp_path / "ds", episodes, obs_space, act_space)
    back = load_dataset(tmp_path / "ds")
    _assert_episodes_equal(episodes, back.episodes)
    assert back.observation_space == obs_space and back.action_space == act_space


def test_minari_reads_what_tracerl_recorded(tmp_path):
    import minari

    summary = record(CUE, tmp_path / "cue", {"expert": (experts.cue_delay_expert, 6), "random": ("random", 6)},
                     env_kwargs={"delay": 5, "difficulty": 1}, n_envs=4, seed=1, dataset_id="tracerl/cue5-mixed-v0")
    ours = load_dataset(summary.path)
    theirs = minari.MinariDataset(tmp_path / "cue" / "data")
    assert theirs.total_episodes == len(ours) == 12 and theirs.total_steps == ours.total_steps == 60
    assert theirs.id == "tracerl/cue5-mixed-v0"
    for a, b in zip(ours, theirs.iterate_episodes()):
        np.testing.assert_array_equal(a.observations, b.observations)
        np.testing.assert_array_equal(a.actions, b.actions)
        np.testing.assert_array_equal(a.rewards, b.rewards)
        np.testing.assert_array_equal(a.terminations, b.terminations)
        np.testing.assert_array_equal(a.infos["success"], b.infos["success"])
    env = theirs.recover_environment()
    assert env.unwrapped.delay == 5 and env.unwrapped.difficulty == 1
    assert ours.env_id == CUE and ours.env_kwargs == {"delay": 5, "difficulty": 1}


def test_mixed_dataset_has_exact_counts_and_the_policies_quality(tmp_path):
    summary = record(CUE, tmp_path / "mix", {"expert": (experts.cue_delay_expert, 10), "wrong": (experts.cue_delay_wrong, 15),
                                             "random": ("random", 20)},
                     env_kwargs={"delay": 3, "difficulty": 1}, n_envs=6, seed=0)
    ds = load_dataset(summary.path)
    assert ds.policy_counts() == {"expert": 10, "wrong": 15, "random": 20}
    assert all(ep.success for ep in ds if ep.policy == "expert")
    assert not any(ep.success for ep in ds if ep.policy == "wrong")
    assert summary.per_policy["expert"]["success_rate"] == 1.0 and summary.per_policy["wrong"]["success_rate"] == 0.0
    # the cue info (present on every step, reset included) agrees with the cue on the first observation; success is
    # reported on the last step only, also in episodes started by an autoreset (whose step repeats the ended
    # episode's success at the top level of the vector infos)
    for ep in ds:
        assert ep.infos["_cue"].all() and (ep.infos["cue"] == ep.observations[0, 0]).all()
        assert ep.infos["_success"].tolist() == [False] * len(ep) + [True]


def test_an_agent_records_through_predict(tmp_path):
    from tracerl import TraceRL

    agent = TraceRL(env=CUE, env_kwargs={"delay": 3}, memory="gru", seed=0, n_envs=2, n_steps=8, verbose=0)
    episodes, _, _ = collect_episodes(CUE, {"agent": (agent, 5)}, env_kwargs={"delay": 3}, n_envs=2, seed=3,
                                      deterministic=True)
    assert len(episodes) == 5 and all(len(ep) == 3 for ep in episodes)
    # replaying the agent's predict on the recorded observations gives the recorded actions
    for ep in episodes:
        state = None
        for t in range(len(ep)):
            a, state = agent.predict(ep.observations[t][None], state, episode_start=np.array([t == 0]),
                                     deterministic=True)
            assert int(a[0]) == int(ep.actions[t])


def test_returns_to_go_known_answers():
    np.testing.assert_allclose(returns_to_go([1.0, 2.0, 3.0]), [6.0, 5.0, 3.0])
    np.testing.assert_allclose(returns_to_go([1.0, 2.0, 3.0], gamma=0.5), [2.75, 3.5, 3.0])
    np.testing.assert_allclose(returns_to_go([0.0, 0.0, -1.0]), [-1.0, -1.0, -1.0])
    with pytest.raises(ConfigError, match="gamma"):
        returns_to_go([1.0], gamma=1.5)


def test_record_refuses_to_replace_what_is_not_a_dataset(tmp_path):
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="exists"):
        record(CUE, tmp_path / "precious", {"random": ("random", 2)})
    with pytest.raises(ConfigError, match="not a dataset"):
        record(CUE, tmp_path / "precious", {"random": ("random", 2)}, overwrite=True)
    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"


def test_unknown_info_key_and_bad_counts_are_named():
    with pytest.raises(ConfigError, match="nope"):
        collect_episodes(CUE, {"random": ("random", 2)}, info_keys=["nope"])
    with pytest.raises(ConfigError, match="episodes=-1"):
        collect_episodes(CUE, {"random": ("random", -1)})


# ------------------------------------------------------------------------------------------------ checked reads


@pytest.fixture()
def small_dataset(tmp_path):
    record(CUE, tmp_path / "ds", {"expert": (experts.cue_delay_expert, 3)}, env_kwargs={"delay": 3}, n_envs=3)
    return tmp_path / "ds"


def _edit(path, fn):
    with h5py.File(path / "data" / "main_data.hdf5", "a") as f:
        fn(f)


@pytest.mark.faults("a dataset directory that does not exist | DatasetError naming the path | none")
def test_missing_dataset_is_named(tmp_path):
    with pytest.raises(DatasetError, match="no such dataset") as err:
        load_dataset(tmp_path / "nowhere")
    assert err.value.path == str(tmp_path / "nowhere")


@pytest.mark.faults("dataset metadata says another storage format (arrow) | DatasetError naming data_format | none")
def test_foreign_storage_format_is_refused(small_dataset):
    meta_path = small_dataset / "data" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["data_format"] = "arrow"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="arrow") as err:
        load_dataset(small_dataset)
    assert err.value.entry == "data_format"


@pytest.mark.faults("dataset HDF5 file replaced by garbage bytes | DatasetError naming the file | the dataset")
def test_garbage_hdf5_is_named(small_dataset):
    (small_dataset / "data" / "main_data.hdf5").write_bytes(b"not an hdf5 file" * 10)
    with pytest.raises(DatasetError, match="HDF5") as err:
        load_dataset(small_dataset)
    assert err.value.path.endswith("main_data.hdf5")


@pytest.mark.faults("an episode's actions array is one step short | DatasetError naming episode_1/actions | none")
def test_length_mismatch_names_the_episode_and_field(small_dataset):
    def cut(f):
        acts = f["episode_1/actions"][()]
        del f["episode_1/actions"]
        f["episode_1"].create_dataset("actions", data=acts[:-1])

    _edit(small_dataset, cut)
    with pytest.raises(DatasetError, match="shape") as err:
        load_dataset(small_dataset)
    assert err.value.entry == "episode_1/actions"


@pytest.mark.faults("an episode marked terminated in its middle | DatasetError naming the episode and step | none")
def test_done_flag_inside_an_episode_is_refused(small_dataset):
    def flag(f):
        f["episode_2/terminations"][0] = True

    _edit(small_dataset, flag)
    with pytest.raises(DatasetError, match="step 0") as err:
        load_dataset(small_dataset)
    assert err.value.entry == "episode_2"


@pytest.mark.faults("an episode whose last step is neither terminated nor truncated | DatasetError (incomplete) | none")
def test_incomplete_episode_is_refused(small_dataset):
    def unflag(f):
        f["episode_0/terminations"][-1] = False

    _edit(small_dataset, unflag)
    with pytest.raises(DatasetError, match="incomplete"):
        load_dataset(small_dataset)


@pytest.mark.faults("metadata counts more episodes than the file holds | DatasetError naming the missing group | none")
def test_episode_count_mismatch_is_refused(small_dataset):
    _edit(small_dataset, lambda f: f.__delitem__("episode_2"))
    with pytest.raises(DatasetError, match="episode_2"):
        load_dataset(small_dataset)


@pytest.mark.faults("a Discrete action outside its space in a dataset | DatasetError naming episode/actions | none")
def test_action_outside_the_space_is_refused(small_dataset):
    def bad(f):
        f["episode_0/actions"][1] = 7

    _edit(small_dataset, bad)
    with pytest.raises(DatasetError, match="outside") as err:
        load_dataset(small_dataset)
    assert err.value.entry == "episode_0/actions"
