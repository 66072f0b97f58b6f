"""The carry between steps (``tracerl.policies.carry.Carry``) and the one stored-state convention of both
collectors: a stored memory state is the state the core starts that step from (episode starts applied)."""

from __future__ import annotations

import numpy as np
import torch

from tracerl import TraceRL
from tracerl.memory import make_memory
from tracerl.policies.carry import ACTING, Carry


def _gru():
    return make_memory("gru", input_dim=3, hidden_size=4)


def test_initial_carry_starts_every_row_with_each_networks_initial_state_and_zero_inputs():
    carry = Carry.initial({"a": _gru(), "b": make_memory("lstm", input_dim=3, hidden_size=2)}, 3, (2,), torch.float32,
                          "cpu")
    assert carry.batch_size == 3 and bool(carry.episode_start.all())
    assert set(carry.states) == {"a", "b"} and set(carry.states["b"]) == {"h", "c"}
    assert carry.prev_action.shape == (3, 2) and not carry.prev_action.any() and not carry.prev_reward.any()


def test_advance_moves_action_reward_and_ends_forward_and_reset_where_marks_new_episodes():
    core = _gru()
    carry = Carry.initial({ACTING: core}, 3, (), torch.int64, "cpu")
    state = {"h": torch.randn(3, 1, 4)}
    nxt = carry.advance({ACTING: state}, torch.tensor([1, 0, 1]), torch.tensor([0.5, -1.0, 2.0]),
                        torch.tensor([False, True, False]))
    assert nxt.episode_start.tolist() == [False, True, False]
    assert nxt.prev_action.tolist() == [1, 0, 1] and nxt.prev_reward.tolist() == [0.5, -1.0, 2.0]
    masked_action, masked_reward = nxt.masked_inputs()
    assert masked_action.tolist() == [1, 0, 1] and masked_reward.tolist() == [0.5, 0.0, 2.0]
    reset = nxt.reset_where(torch.tensor([True, False, False]))
    assert reset.episode_start.tolist() == [True, True, False]
    assert nxt.episode_start.tolist() == [False, True, False]  # carries are values: the old one is unchanged


def test_stored_states_apply_the_next_steps_episode_starts_and_nothing_else():
    core = _gru()
    state = {"h": torch.randn(3, 1, 4)}
    carry = Carry(states={ACTING: state}, prev_action=torch.zeros(3), prev_reward=torch.zeros(3),
                  episode_start=torch.tensor([False, True, False]))
    stored = carry.stored_states({ACTING: core})[ACTING]["h"]
    assert torch.equal(stored[0], state["h"][0]) and torch.equal(stored[2], state["h"][2])
    assert not stored[1].any()
    x = torch.randn(1, 3, 3)
    start = carry.episode_start[None]
    y_stored, _ = core(x, {"h": stored}, start)
    y_carried, _ = core(x, state, start)
    assert torch.equal(y_stored, y_carried)  # the core would have reset that row itself


def test_predicts_public_form_round_trips_through_the_carry():
    carry = Carry(states={ACTING: {"h": torch.randn(2, 1, 4)}}, prev_action=torch.tensor([1, 0]),
                  prev_reward=torch.tensor([0.0, 3.0]), episode_start=torch.tensor([False, False]))
    public = carry.public()
    assert sorted(public) == ["memory.h", "prev_action"]
    back = Carry.from_public(public, episode_start=[False, True], prev_reward=[1.5, 2.5], device="cpu")
    assert torch.equal(back.states[ACTING]["h"], carry.states[ACTING]["h"])
    assert back.episode_start.tolist() == [False, True] and back.prev_reward.tolist() == [1.5, 2.5]
    assert Carry.from_public(public, [True, True], None, "cpu").prev_reward.tolist() == [0.0, 0.0]


def test_checkpoint_tensors_keep_each_collectors_entry_names():
    states = {"q": {"h": torch.randn(2, 1, 4)}, "actor": {"h": torch.randn(2, 1, 4)}}
    carry = Carry(states=states, prev_action=torch.zeros(2, 1), prev_reward=torch.ones(2),
                  episode_start=torch.tensor([True, False]))
    multi = carry.tensors()
    assert sorted(multi) == ["episode_start", "prev_action", "prev_reward", "state.actor.h", "state.q.h"]
    back = Carry.from_tensors(multi, ["q", "actor"], "cpu")
    assert all(torch.equal(back.states[n]["h"], states[n]["h"]) for n in states)
    single = Carry(states={ACTING: states["q"]}, prev_action=carry.prev_action, prev_reward=carry.prev_reward,
                   episode_start=carry.episode_start).tensors(single=ACTING)
    assert "state.h" in single  # the PPO family's format, unchanged
    assert torch.equal(Carry.from_tensors(single, [ACTING], "cpu", single=ACTING).states[ACTING]["h"],
                       states["q"]["h"])


def test_ppo_stores_a_chunks_start_state_with_its_episode_starts_applied():
    """The PPO collector stores what the off-policy collector stores: a chunk that begins at an episode start
    begins from the initial state, not from the previous episode's memory (the update's result is the same,
    since the core resets that row itself)."""
    agent = TraceRL(env="tracerl/CueDelay-v0", env_kwargs={"delay": 2, "difficulty": 1}, memory="gru", seed=0,
                    verbose=0, n_envs=4, n_steps=32, bptt_len=3, hidden_size=8)
    agent.learn(128)
    buf, L = agent.learner.buf, agent.learner.buf.chunk_len
    starts = buf.episode_start[::L]  # [C, B]: chunks that begin at an episode start
    assert bool(starts.any()) and bool((~starts).any())
    h = buf.chunk_states["h"]  # [C, B, layers, H]
    assert not h[starts].any()
    assert bool((h[~starts].abs().sum(-1) > 0).all())  # other chunks carry their episode's memory


def test_inspection_and_predict_carry_memory_alike_for_an_off_policy_agent():
    agent = TraceRL(env="tracerl/CueDelay-v0", env_kwargs={"delay": 2, "difficulty": 1}, algo="r2d2", seed=0,
                    verbose=0, n_envs=2, learning_starts=10**9, buffer_size=400, seq_len=3, hidden_size=8)
    report = agent.inspect(episodes=2)
    assert len(report.episodes) == 2
    obs = np.zeros((2, 3), dtype=np.float32)
    _, state = agent.predict(obs, deterministic=True)
    assert sorted(state) == ["memory.h", "prev_action"]
    _, state2 = agent.predict(obs, state, episode_start=[False, True], deterministic=True)
    assert not torch.equal(state2["memory.h"][0], state["memory.h"][0])
