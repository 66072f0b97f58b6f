"""Sequence replay: windows stay inside one episode, burn-in starts on the stored state, sizes are checked,
seed 003's sampling flags, prioritized sampling, and exact checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracerl.data.replay import ReplayTooSmallError, SequenceReplay
from tracerl.errors import ConfigError
from tracerl.memory.base import TensorSpec

SPEC = {"actor.h": TensorSpec((2,))}


def _replay(n_envs=2, capacity=400, burn_in=4, seq_len=4, lookahead=1, **kw) -> SequenceReplay:
    return SequenceReplay(capacity, n_envs, 3, (), torch.int64, SPEC, burn_in=burn_in, seq_len=seq_len,
                          lookahead=lookahead, seed=0, **kw)


def _fill(rp: SequenceReplay, lengths: list[list[int]], terminate: bool = True) -> None:
    """Write episodes of the given lengths (per env; envs step in lockstep until each runs out).

    Row observation = [episode id, step, env]; action = step; reward = 10 * episode + step; the stored state
    of a step is [episode id, step], so a window can check which episode and step its data came from.
    """
    B = rp.n_envs
    queues = [list(ls) for ls in lengths]
    ep = np.full(B, -1)
    t = np.zeros(B, int)
    left = np.zeros(B, int)
    next_id = 0
    steps = max(sum(q) for q in queues)
    for _ in range(steps):
        start = left == 0
        for b in np.flatnonzero(start):
            left[b] = queues[b].pop(0) if queues[b] else 10**9
            ep[b], t[b] = next_id, 0
            next_id += 1
        obs = np.stack([ep, t, np.arange(B)], 1).astype(np.float32)
        state = {"actor.h": torch.as_tensor(np.stack([ep, t], 1), dtype=torch.float32)}
        left -= 1
        done = left == 0
        final = obs.copy()
        final[:, 1] += 1
        rp.add(obs, state, start, np.where(start, 0, t - 1), np.zeros(B, np.float32), t.copy(),
               (10 * ep + t).astype(np.float32), done & terminate, done & ~terminate, final)
        t += 1


def _check_window(rp: SequenceReplay, batch, i: int) -> None:
    """Every property a window must have (used by the example and the property tests)."""
    obs, valid = batch.obs[:, i].numpy(), batch.valid[:, i].numpy()
    Bi, T = batch.burn_in, batch.T
    env, row = batch.index[i]
    anchor_ep, anchor_t = rp.episode[env, row], rp.step[env, row]
    assert valid[Bi], "the first training row is always a real step"
    assert batch.has_action[Bi, i]
    assert anchor_t % rp.k == 0
    idx = np.flatnonzero(valid)
    # one contiguous block of rows of the anchor's episode, steps consecutive, nothing from another episode
    assert np.all(np.diff(idx) == 1)
    assert np.all(obs[idx, 0] == anchor_ep)
    assert np.all(obs[idx, 1] == anchor_t - (Bi - idx[0]) + np.arange(len(idx)))
    assert np.all(obs[idx, 2] == env)
    # padding rows are zero and reset the memory
    assert np.all(obs[~valid] == 0)
    assert batch.episode_start[~valid, i].all()
    # burn-in: full, or left-padded down to the episode's first step, which resets
    burn = Bi - idx[0]
    assert burn == min(Bi, anchor_t)
    if burn < Bi:
        assert obs[idx[0], 1] == 0 and batch.episode_start[idx[0], i]
    assert not batch.episode_start[idx[1:], i].any() if len(idx) > 1 else True
    # the stored state is the state written at the burn-in's first step
    np.testing.assert_array_equal(batch.state["actor.h"][i].numpy(), [anchor_ep, anchor_t - burn])
    # training rows: steps inside [burn_in, burn_in + seq_len), never burn-in or lookahead rows
    train = batch.train[:, i].numpy()
    assert not train[:Bi].any() and not train[Bi + rp.seq_len:].any()
    assert np.all(batch.has_action[:, i].numpy()[train])
    # a final row comes right after the episode's last step and has no action
    last = idx[-1]
    if last < T - 1 and rp.end_row[env, row] >= 0:  # the episode ended inside the window
        assert not batch.has_action[last, i]
    assert T == rp.burn_in + rp.seq_len + rp.lookahead


def test_windows_never_cross_episodes_and_burn_in_never_uses_a_previous_episode():
    rp = _replay(n_envs=2, capacity=300, burn_in=4, seq_len=4, lookahead=2)
    _fill(rp, [[3, 9, 1, 14, 2, 6], [7, 1, 1, 20, 5]])
    batch = rp.sample(256)
    for i in range(batch.N):
        _check_window(rp, batch, i)
    # windows anchored early in an episode have short burn-ins, left-padded with zeros
    assert (batch.step0 < 4).any() and (batch.step0 >= 4).any()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_envs=st.integers(1, 3),
    lengths=st.lists(st.lists(st.integers(1, 12), min_size=1, max_size=8), min_size=3, max_size=3),
    stride=st.sampled_from([1, 2, 3]),
    burn_mult=st.integers(0, 2),
    seq_len=st.integers(1, 6),
    lookahead=st.integers(1, 3),
    slack=st.integers(0, 30),
    terminate=st.booleans(),
)
def test_sampled_windows_respect_episode_boundaries_for_random_boundary_patterns(
        n_envs, lengths, stride, burn_mult, seq_len, lookahead, slack, terminate):
    """Property (hypothesis): for any pattern of episode lengths, ring wrap-around (small capacities) and
    window geometry, every sampled window stays inside one episode, starts its burn-in on the stored state of
    that episode and pads the rest with zeros."""
    burn_in = stride * burn_mult
    window = burn_in + seq_len + lookahead
    rp = SequenceReplay((window + slack) * n_envs, n_envs, 3, (), torch.int64, SPEC, burn_in=burn_in,
                        seq_len=seq_len, lookahead=lookahead, state_stride=stride, seed=1)
    _fill(rp, lengths[:n_envs], terminate=terminate)
    try:
        batch = rp.sample(32)
    except ReplayTooSmallError:
        assert rp.num_windows() == 0 or rp.C < 2 * window
        return
    for i in range(batch.N):
        _check_window(rp, batch, i)


def test_empty_replay_raises_a_typed_error_naming_the_sizes():
    rp = _replay()
    with pytest.raises(ReplayTooSmallError, match=r"holds 0 rows from 0 episodes.*burn_in 4 \+ seq_len 4"):
        rp.sample(4)


def test_replay_with_no_complete_step_raises():
    rp = _replay(n_envs=1)
    obs = np.zeros((1, 3), np.float32)
    rp.add(obs, {"actor.h": torch.zeros(1, 2)}, np.array([True]), np.zeros(1, int), np.zeros(1, np.float32),
           np.zeros(1, int), np.zeros(1, np.float32), np.array([False]), np.array([False]))
    assert rp.size == 1 and rp.num_windows() == 0  # the step's next observation is not stored yet
    with pytest.raises(ReplayTooSmallError, match="holds 1 rows from 1 episodes"):
        rp.sample(1)


def test_capacity_smaller_than_one_window_is_a_config_error():
    with pytest.raises(ConfigError, match=r"capacity=20 gives 10 rows per env.*4 \+ 8 \+ 1 = 13"):
        _replay(n_envs=2, capacity=20, burn_in=4, seq_len=8)
    with pytest.raises(ConfigError, match="burn_in=3 is not a multiple of state_stride=2"):
        _replay(burn_in=3, seq_len=4, state_stride=2)
    with pytest.raises(ConfigError, match="seq_len=0"):
        _replay(seq_len=0)


def test_window_sampled_with_the_initial_state_flag_contains_step_0():
    rp = _replay(burn_in=4, seq_len=3, always_from_initial_state=True, state_stride=1)
    _fill(rp, [[9, 12, 7], [15, 6, 8]])
    batch = rp.sample(64)
    assert (batch.step0 == 0).all()
    Bi = batch.burn_in
    assert (batch.obs[Bi, :, 1] == 0).all() and batch.episode_start[Bi].all()
    assert batch.train[Bi].all()  # step 0 is a training step (seed 003: include the first step)
    assert not batch.valid[:Bi].any()  # nothing before the episode's first step


def test_random_sequence_length_trains_on_a_prefix_and_nominal_probability_one_keeps_full_length():
    rp = _replay(burn_in=0, seq_len=6, random_seq_len=True, nominal_seq_len_prob=0.0)
    _fill(rp, [[40], [40]])
    n_train = rp.sample(400).train.sum(0).numpy()
    assert n_train.min() >= 1 and n_train.max() <= 6 and len(np.unique(n_train)) > 3
    rp.nominal_seq_len_prob = 1.0
    batch = rp.sample(100)
    assert torch.equal(batch.train.sum(0), torch.clamp(40 - batch.step0, max=6))  # full length (or the episode's end)


def test_prioritized_sampling_follows_the_r2d2_sequence_priority():
    rp = _replay(n_envs=1, burn_in=0, seq_len=2, prioritized=True, priority_alpha=1.0, priority_eta=0.5)
    _fill(rp, [[40]])
    batch = rp.sample(8)
    td = torch.zeros(batch.T, batch.N)
    td[0, 0], td[1, 0] = 4.0, 2.0  # window 0: max 4, mean 3 -> p = 0.5 * 4 + 0.5 * 3 = 3.5
    rp.update_priorities(batch.index[:1], td[:, :1], batch.train[:, :1])
    env, row = batch.index[0]
    assert rp.weight[env, row] == pytest.approx(3.5 + rp.priority_eps)
    counts = {}
    for _ in range(20):
        b = rp.sample(50, beta=0.5)
        assert float(b.weight.max()) == pytest.approx(1.0) and (b.weight > 0).all()
        for e, r in b.index:
            counts[(e, r)] = counts.get((e, r), 0) + 1
    top = counts[(env, row)]
    assert top > 3 * np.mean([c for k, c in counts.items() if k != (env, row)])


def test_overwritten_burn_in_starts_are_never_sampled():
    rp = _replay(n_envs=1, capacity=30, burn_in=4, seq_len=4, lookahead=1, state_stride=4)
    _fill(rp, [[100]])  # one long episode through a 30-row ring: its oldest rows are gone
    for _ in range(5):
        batch = rp.sample(64)
        for i in range(batch.N):
            _check_window(rp, batch, i)


def test_state_dict_round_trip_resumes_sampling_exactly():
    rp = _replay(prioritized=True)
    _fill(rp, [[5, 9, 3], [11, 2, 8]])
    tensors, meta = rp.state_dict()
    other = _replay(prioritized=True)
    other.load_state_dict(tensors, meta)
    a, b = rp.sample(16, beta=0.4), other.sample(16, beta=0.4)
    for name in ("obs", "action", "reward", "valid", "train", "weight"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert torch.equal(a.state["actor.h"], b.state["actor.h"])
    with pytest.raises(ValueError, match="C=200 in the checkpoint"):
        _replay(capacity=300).load_state_dict(tensors, meta)
