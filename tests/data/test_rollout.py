import numpy as np

from tracerl.data.rollout import EpisodeStats


def test_episode_stats_count_finished_episodes_only():
    st = EpisodeStats(2)
    st.step(np.array([1.0, 0.5]), np.array([False, True]), np.array([np.nan, 1.0]))
    st.step(np.array([2.0, 0.0]), np.array([True, False]), np.array([0.0, np.nan]))
    assert list(st.returns) == [0.5, 3.0]
    assert list(st.lengths) == [1, 2]
    assert list(st.successes) == [1.0, 0.0]
    assert st.episodes == 2


def test_episode_stats_survive_json():
    st = EpisodeStats(2)
    st.step(np.array([1.0, 0.5]), np.array([False, True]), None)
    other = EpisodeStats(2)
    other.load_json(st.to_json())
    assert other.to_json() == st.to_json()
