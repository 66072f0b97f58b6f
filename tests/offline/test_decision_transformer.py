"""Decision Transformer and BC: causal mask, acting with the context as state, save/load, offline learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

pytest.importorskip("minari")

from tracerl.errors import CheckpointError, ConfigError  # noqa: E402
from tracerl.offline import collect_episodes, experts, record  # noqa: E402
from tracerl.offline.bc import train_bc  # noqa: E402
from tracerl.offline.dataset import TrajectoryDataset, returns_to_go  # noqa: E402
from tracerl.offline.decision_transformer import DecisionTransformer, DTConfig, SequencePolicy  # noqa: E402
from tracerl.offline.train import build_table, sample_windows, train_offline  # noqa: E402

CUE = "tracerl/CueDelay-v0"


def _inputs(K: int, B: int, D: int, n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(K, B, D, generator=g), torch.randint(0, n, (K, B), generator=g),
            torch.randn(K, B, generator=g), torch.arange(K)[:, None].repeat(1, B), torch.ones(K, B, dtype=torch.bool))


@pytest.mark.parametrize("with_returns", [True, False])
def test_a_prediction_never_sees_later_tokens_or_its_own_action(with_returns):
    torch.manual_seed(0)
    K, B, D, n = 6, 3, 5, 4
    model = DecisionTransformer(D, spaces.Discrete(n), DTConfig(context_len=K, embed_dim=16, n_heads=2,
                                                               condition_on_return=with_returns), max_timestep=K).eval()
    s, a, r, ts, valid = _inputs(K, B, D, n)
    base = model(s, a, r, ts, valid)
    for t in range(K):
        s2, a2, r2 = s.clone(), a.clone(), r.clone()
        s2[t + 1:] = torch.randn_like(s2[t + 1:])
        r2[t + 1:] += 5.0
        a2[t:] = (a2[t:] + 1) % n  # the action of step t itself, and every later one
        out = model(s2, a2, r2, ts, valid)
        torch.testing.assert_close(out[: t + 1], base[: t + 1], rtol=0, atol=1e-6)
        if t + 1 < K:  # the later predictions did change: the perturbation was seen where it is allowed
            assert not torch.allclose(out[t + 1:], base[t + 1:])
    if with_returns:  # the return-to-go of step t is seen by the prediction at t
        r3 = r.clone()
        r3[2] += 5.0
        out = model(s, a, r3, ts, valid)
        torch.testing.assert_close(out[:2], base[:2], rtol=0, atol=1e-6)
        assert not torch.allclose(out[2], base[2])


def test_padding_is_never_attended():
    torch.manual_seed(1)
    K, B, D, n = 5, 2, 3, 2
    model = DecisionTransformer(D, spaces.Discrete(n), DTConfig(context_len=K, embed_dim=16), max_timestep=K).eval()
    s, a, r, ts, valid = _inputs(K, B, D, n)
    valid[:2] = False  # two steps of left padding
    base = model(s, a, r, ts, valid)
    s2 = s.clone()
    s2[:2] = 100.0
    out = model(s2, a, r, ts, valid)
    torch.testing.assert_close(out[2:], base[2:], rtol=0, atol=1e-6)


def _tiny_dataset(tmp_path, delay=4, expert=6, wrong=6, random=6, seed=0):
    from tracerl.offline import load_dataset

    record(CUE, tmp_path / "ds", {"expert": (experts.cue_delay_expert, expert), "wrong": (experts.cue_delay_wrong, wrong),
                                  "random": ("random", random)},
           env_kwargs={"delay": delay, "difficulty": 1}, n_envs=4, seed=seed, overwrite=True)
    return load_dataset(tmp_path / "ds")


def test_windows_end_at_a_step_and_reach_back_within_its_episode(tmp_path):
    ds = _tiny_dataset(tmp_path, delay=3, expert=2, wrong=1, random=1)
    table = build_table(ds)
    np.testing.assert_allclose(table.returns_to_go[:3], returns_to_go(ds[0].rewards))
    batch = sample_windows(table, 32, 5, np.random.default_rng(0))
    ts, valid = batch["timesteps"].numpy(), batch["valid"].numpy()
    # 3-step episodes in windows of 5: the last step is valid, the first two never, timesteps count up to the end
    assert valid[-1].all() and not valid[:2].any()
    for b in range(32):
        steps = ts[valid[:, b], b]
        np.testing.assert_array_equal(steps, np.arange(len(steps)))


def test_episode_windows_end_at_episode_ends_and_cover_every_step_of_a_short_episode(tmp_path):
    """``window_ends="episode"``: every window ends at an episode's last step, so with K >= the episode length each
    window holds a whole episode (each action predicted from its full past) and the decision step of a memory task
    is in every window instead of 1 in ``len(episode)`` of them (``"uniform"``)."""
    ds = _tiny_dataset(tmp_path, delay=3, expert=2, wrong=1, random=1)
    table = build_table(ds)
    for ends, decisions in (("episode", 32), ("uniform", None)):
        batch = sample_windows(table, 32, 5, np.random.default_rng(0), window_ends=ends)
        ts, valid = batch["timesteps"].numpy(), batch["valid"].numpy()
        last = ts[-1]
        if decisions is not None:
            assert (last == 2).sum() == decisions  # the last step of each 3-step episode ends every window
            np.testing.assert_array_equal(valid.sum(0), np.full(32, 3))  # whole episodes
        else:
            assert 0 < (last == 2).sum() < 32  # uniform ends: some windows end before the episode does
    with pytest.raises(ConfigError, match="window_ends"):
        DTConfig(window_ends="middle").validate()


def test_predict_carries_the_context_and_returns_to_go(tmp_path):
    ds = _tiny_dataset(tmp_path)
    policy = train_offline(ds, DTConfig(context_len=4, embed_dim=16, n_layers=1, train_steps=3), seed=0).policy
    ep = ds[0]
    state, scale = None, policy.return_scale
    for t in range(len(ep)):
        prev = np.array([ep.rewards[t - 1] if t else 0.0])
        _, state = policy.predict(ep.observations[t][None], state, episode_start=np.array([t == 0]), prev_reward=prev,
                                  target_return=1.0)
        # the context is the episode so far: returns-to-go drop by the rewards received, timesteps count
        n = min(t + 1, 4)
        assert state["valid"][0].sum() == n and state["valid"][0, -n:].all()
        expected_rtg = (1.0 - np.concatenate([[0.0], np.cumsum(ep.rewards[:t])])) / scale
        np.testing.assert_allclose(state["returns_to_go"][0, -n:].numpy(), expected_rtg[-n:], rtol=1e-6)
        np.testing.assert_array_equal(state["timesteps"][0, -n:].numpy(), np.arange(t + 1)[-n:])
    # the step-by-step prediction equals one forward pass over the whole window
    out = policy.model(state["states"].transpose(0, 1), state["actions"].transpose(0, 1),
                       state["returns_to_go"].transpose(0, 1), state["timesteps"].transpose(0, 1),
                       state["valid"].transpose(0, 1))
    assert int(out[-1, 0].argmax()) == int(state["actions"][0, -1])
    # an episode start empties that row's context
    _, fresh = policy.predict(ep.observations[0][None], state, episode_start=np.array([True]), prev_reward=np.zeros(1))
    assert fresh["valid"][0].sum() == 1 and fresh["timesteps"][0, -1] == 0
    with pytest.raises(ValueError, match="prev_reward"):
        policy.predict(ep.observations[1][None], fresh, episode_start=np.array([False]))


def test_save_load_round_trip_and_tampering(tmp_path):
    ds = _tiny_dataset(tmp_path)
    policy = train_offline(ds, DTConfig(context_len=4, embed_dim=16, n_layers=1, train_steps=5), seed=0).policy
    policy.save(tmp_path / "dt.tracerl")
    loaded = SequencePolicy.load(tmp_path / "dt.tracerl")
    assert loaded.kind == "dt" and loaded.target_return == policy.target_return
    obs = np.stack([ep.observations[0] for ep in ds.episodes[:5]])
    for k, v in policy.model.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[k], v)
    a1, s1 = policy.predict(obs)
    a2, s2 = loaded.predict(obs)
    np.testing.assert_array_equal(a1, a2)
    data = bytearray((tmp_path / "dt.tracerl").read_bytes())
    data[-3] ^= 0xFF
    (tmp_path / "bad.tracerl").write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        SequencePolicy.load(tmp_path / "bad.tracerl")


def test_dt_fits_a_tiny_dataset(tmp_path):
    ds = _tiny_dataset(tmp_path, delay=3, expert=2, wrong=2, random=0)
    result = train_offline(ds, DTConfig(context_len=3, embed_dim=32, n_layers=1, dropout=0.0, train_steps=150,
                                        learning_rate=3e-3, warmup_steps=10), seed=0)
    assert np.mean(result.losses[-10:]) < 0.05 < np.mean(result.losses[:5])
    # conditioned on each episode's own return, it replays that episode's actions
    for ep in ds:
        state = None
        for t in range(len(ep)):
            a, state = result.policy.predict(ep.observations[t][None], state, episode_start=np.array([t == 0]),
                                             prev_reward=np.array([ep.rewards[t - 1] if t else 0.0]),
                                             target_return=ep.total_return)
            assert int(a[0]) == int(ep.actions[t])


def test_dt_learns_cue_delay_from_mixed_data_where_bc_cannot(tmp_path):
    """Expert 15 %, wrong-answer 45 %, random 40 %: the most common action at the decision is wrong, so cloning
    fails, while conditioning on the best return picks the expert's (and lucky random) answers. The scripted
    policies take action 0 before the decision: the answer needs the cue recalled from 3 steps back."""
    ds = _tiny_dataset(tmp_path, delay=4, expert=30, wrong=90, random=80, seed=1)
    cfg = DTConfig(context_len=4, embed_dim=32, n_layers=2, n_heads=2, dropout=0.0, train_steps=400,
                   learning_rate=1e-3, warmup_steps=20, batch_size=64)
    dt = train_offline(ds, cfg, seed=0).policy
    bc = train_bc(ds, cfg, seed=0).policy
    env_kwargs = {"delay": 4, "difficulty": 1}
    best = dt.evaluate(CUE, 100, env_kwargs=env_kwargs, target_return=1.0).success_rate
    worst = dt.evaluate(CUE, 100, env_kwargs=env_kwargs, target_return=-1.0).success_rate
    cloned = bc.evaluate(CUE, 100, env_kwargs=env_kwargs).success_rate
    assert best >= 0.95, best
    assert worst <= 0.1, worst  # the return it is asked for steers it
    assert cloned <= 0.3, cloned


def test_bad_settings_are_named():
    with pytest.raises(ConfigError, match="n_heads"):
        DTConfig(embed_dim=10, n_heads=3).validate()
    with pytest.raises(ConfigError, match="top_fraction"):
        DTConfig(top_fraction=0.0).validate()
    with pytest.raises(ConfigError, match="unknown"):
        DTConfig.from_dict({"context": 3})


def test_dt_acts_through_the_recorder(tmp_path):
    ds = _tiny_dataset(tmp_path)
    policy = train_offline(ds, DTConfig(context_len=4, embed_dim=16, n_layers=1, train_steps=3), seed=0).policy
    episodes, _, _ = collect_episodes(CUE, {"dt": (policy, 4)}, env_kwargs={"delay": 4}, n_envs=2)
    assert [len(ep) for ep in episodes] == [4] * 4


def test_empty_dataset_is_refused(tmp_path):
    from tracerl.errors import DatasetError

    ds = TrajectoryDataset(tmp_path, [], spaces.Box(-1, 1, (3,)), spaces.Discrete(2), {})
    with pytest.raises(DatasetError, match="no episodes"):
        train_offline(ds, DTConfig(train_steps=1))


def test_box_actions_are_scaled_to_unit_range_and_back():
    from tracerl.offline.decision_transformer import ActionCodec

    codec = ActionCodec(spaces.Box(low=np.array([-2.0, 0.0], np.float32), high=np.array([2.0, 10.0], np.float32)))
    np.testing.assert_allclose(codec.encode([[-2.0, 0.0], [0.0, 5.0], [2.0, 10.0]]),
                               [[-1.0, -1.0], [0.0, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(codec.decode(np.array([[0.5, -0.5], [3.0, -3.0]])), [[1.0, 2.5], [2.0, 0.0]])
    assert ActionCodec(spaces.Discrete(3, start=-1)).decode(np.array([0, 2])).tolist() == [-1, 1]


def test_dt_fits_box_actions(tmp_path):
    """A continuous-action dataset: the action equals the first observation of the episode, held every step."""
    from tracerl.offline.dataset import Episode

    rng = np.random.default_rng(0)
    episodes = []
    for _ in range(16):
        cue = rng.uniform(-1, 1)
        obs = np.zeros((5, 2), dtype=np.float32)
        obs[0] = [cue, 1.0]
        episodes.append(Episode(obs, np.full((4, 1), cue, dtype=np.float32), np.zeros(4), np.array([0, 0, 0, 1], bool),
                                np.zeros(4, bool)))
    ds = TrajectoryDataset(tmp_path, episodes, spaces.Box(-1, 1, (2,), np.float32), spaces.Box(-1, 1, (1,), np.float32),
                           {})
    res = train_offline(ds, DTConfig(context_len=4, embed_dim=32, n_layers=1, dropout=0.0, train_steps=200,
                                     learning_rate=3e-3, warmup_steps=10), seed=0)
    assert np.mean(res.losses[-10:]) < 0.1 * np.mean(res.losses[:5])
    state = None
    obs = np.stack([ep.observations for ep in episodes[:4]])  # [4 episodes, 5, 2]
    for t in range(4):
        a, state = res.policy.predict(obs[:, t], state, episode_start=np.full(4, t == 0), prev_reward=np.zeros(4))
    np.testing.assert_allclose(a[:, 0], obs[:, 0, 0], atol=0.15)  # the last action still answers the first obs
