"""The strategic memory: eviction, replay of recorded decisions, gradients into stored entries, learned retention."""

from __future__ import annotations

import pytest
import torch

from tracerl.errors import ConfigError
from tracerl.memory.strategic import StrategicMemoryBuffer, StrategicMemoryCore, time_features

D = 3


def _core(M: int = 4, **kw) -> StrategicMemoryCore:
    torch.manual_seed(0)
    return StrategicMemoryCore(D, mem_dim=8, max_entries=M, n_heads=2, **kw)


def _starts(T: int, B: int) -> torch.Tensor:
    s = torch.zeros(T, B, dtype=torch.bool)
    s[0] = True
    return s


def _kept_fractions(core: StrategicMemoryCore, T: int, B: int = 4000) -> torch.Tensor:
    """Fraction of ``B`` random ``T``-step episodes whose store keeps step ``t`` at the end, per ``t`` -> ``[T]``."""
    torch.manual_seed(1)
    _, state = core(torch.randn(T, B, D), core.initial_state(B), _starts(T, B))
    kept = torch.zeros(T)
    for t in state["times"].long().flatten().tolist():
        kept[t] += 1
    return kept / B


def test_the_store_fills_free_slots_first_then_evicts_the_lowest_priority_candidate():
    core = _core(M=3)
    T, B = 8, 2
    x = torch.randn(T, B, D)
    _, _, trace = core.forward_with_trace(x, core.initial_state(B), _starts(T, B))
    write = trace["write_slot"]
    assert write[:3].tolist() == [[0, 0], [1, 1], [2, 2]]  # empty slots are taken in order
    # From step 3 on the store is full: the dropped candidate has the lowest retention score (ε = 0).
    with torch.no_grad():
        times = torch.arange(T, dtype=torch.float32).unsqueeze(1).expand(T, B)
        from tracerl.memory.strategic import time_features

        emb = core.embed(torch.cat([x, time_features(times)], dim=-1))
        score = core.scorer(emb).squeeze(-1)  # [T, B] score of every step's entry
    for t in range(3, T):
        for b in range(B):
            held = trace["entry_time"][t, b].long().tolist()
            cands = held + [t]
            scores = [float(score[j, b]) for j in cands]
            dropped = cands[min(range(len(cands)), key=scores.__getitem__)]
            w = int(write[t, b])
            assert (w == 3) == (dropped == t)
            if w < 3:
                assert held[w] == dropped
            kept_next = set(cands) - {dropped}
            if t + 1 < T:
                assert set(trace["entry_time"][t + 1, b].long().tolist()) == kept_next


def test_reservoir_exploration_keeps_a_uniform_sample_of_the_episode():
    core = _core(M=4, retention_explore_mode="reservoir")
    core.learn_retention = False
    core.set_training_progress(0.5)
    assert core.retention_explore == 1.0
    # each of 20 steps survives with probability M / T = 0.2
    assert torch.allclose(_kept_fractions(core, T=20), torch.full((20,), 0.2), atol=0.04)


def test_without_learned_retention_a_fresh_core_evicts_at_random_before_any_trainer_sets_progress():
    """Reservoir retention from construction on: an agent that never trains (a loaded one evaluating, an
    off-policy learner) must not fall back on the untrained scorer."""
    core = _core(M=4, learn_retention=False, retention_explore_mode="reservoir")
    assert torch.allclose(_kept_fractions(core, T=20), torch.full((20,), 0.2), atol=0.04)


def _flagged_stream(T: int, B: int) -> torch.Tensor:
    """Random +-1 signals in column 0; column 1 flags step 0 only (a cue unlike the rest of the stream)."""
    x = torch.sign(torch.randn(T, B, D))
    x[:, :, 1] = 0.0
    x[0, :, 1] = 1.0
    return x


@pytest.mark.parametrize("mode, low, high", [("novelty", 0.8, 1.0), ("reservoir", 0.05, 0.2)])
def test_novelty_exploration_keeps_a_step_unlike_the_stream_almost_always(mode, low, high):
    """Surprise weights: ~65 for the flagged step (its flag is 8 standard deviations out), ~3 for the others,
    so 8 weighted draws from 64 steps keep it with probability ~0.9; reservoir's is M / T = 1/8."""
    core = _core(M=8, retention_explore_mode=mode)
    core.set_training_progress(0.0)  # ε = 1
    T, B = 64, 500
    torch.manual_seed(2)
    core(_flagged_stream(T, B), core.initial_state(B), _starts(T, B))  # a training pass: the moments see the stream
    with torch.no_grad():
        _, state = core(_flagged_stream(T, B), core.initial_state(B), _starts(T, B))
    kept_cue = ((state["times"] == 0) & (state["valid"] > 0.5)).any(-1).float().mean().item()
    assert low <= kept_cue <= high


def test_novelty_keys_are_reservoir_keys_weighted_by_surprise():
    core = _core(retention_explore_mode="novelty")
    core._update_input_moments(torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]] * 50))
    assert core.surprise(torch.tensor([1.0, 0.0, 0.0])).item() == pytest.approx(1.0, rel=1e-3)
    assert core.surprise(torch.tensor([0.0, 1.0, 0.0])).item() == pytest.approx(1e4)  # clipped
    torch.manual_seed(0)
    typical = core.novelty_keep_values(torch.tensor([1.0, 0.0, 0.0]).expand(1, 20000, 3))
    assert typical.mean().item() == pytest.approx(2 / 3, abs=0.01)  # E[U^(1/2)] = 2/3
    assert core.novelty_keep_values(torch.tensor([[[0.0, 1.0, 0.0]]])).item() > 0.99


def test_input_moments_follow_training_passes_only():
    """Acting and evaluation run without gradients and must leave the module as it was."""
    core = _core(retention_explore_mode="novelty")
    core.set_training_progress(0.0)
    x, starts = torch.randn(5, 2, D) + 3.0, _starts(5, 2)
    with torch.no_grad():
        core(x, core.initial_state(2), starts)  # acting
    core.eval()
    core(x, core.initial_state(2), starts)  # eval mode, gradients on
    assert core.input_count.item() == 0
    core.train()
    core(x, core.initial_state(2), starts)  # a training pass
    assert core.input_count.item() == 10
    torch.testing.assert_close(core.input_mean.float(), x.reshape(10, D).mean(0))
    torch.testing.assert_close((core.input_m2 / 10).float(), x.reshape(10, D).var(0, unbiased=False))
    other = _core()  # other modes keep no moments
    other(x, other.initial_state(2), starts)
    assert other.input_count.item() == 0


def test_input_moments_skip_rows_the_trainer_masks_out():
    """PPO pads a rollout not divisible by its BPTT length (and drops crashed episodes' steps): those rows are
    not data and must not move the moments that measure surprise."""
    core = _core(retention_explore_mode="novelty")
    core.set_training_progress(0.0)
    x, starts = torch.randn(5, 2, D) + 3.0, _starts(5, 2)
    mask = torch.ones(5, 2, dtype=torch.bool)
    mask[3:] = False  # the last two rows are padding
    x[3:] = 0.0
    core.forward_replay(x, core.initial_state(2), starts, {"step_mask": mask})
    assert core.input_count.item() == 6
    torch.testing.assert_close(core.input_mean.float(), x[:3].reshape(6, D).mean(0))


def test_a_ppo_update_feeds_only_real_rollout_rows_to_the_input_moments():
    from tracerl import StrategicMemoryBuffer, StrategicMemoryTransformerPolicy, TraceRL

    mem = StrategicMemoryBuffer(obs_dim=3, action_dim=1, mem_dim=8, max_entries=4,
                                retention_explore_mode="novelty")
    agent = TraceRL(StrategicMemoryTransformerPolicy, "tracerl/CueDelay-v0", env_kwargs={"delay": 4}, memory=mem,
                    seed=0, verbose=0, n_envs=2, n_steps=10, bptt_len=4, batch_size=8, n_epochs=1)
    agent.learn(20)  # one rollout of 10 steps x 2 envs, cut into 3 chunks of 4 (2 padded rows per env)
    assert agent.policy.core.input_count.item() == 20


def test_learned_retention_anneals_exploration_from_reservoir_to_the_scorer():
    core = _core(retention_explore_end=0.1, retention_explore_fraction=0.5)
    core.set_training_progress(0.0)
    assert core.retention_explore == 1.0
    core.set_training_progress(0.25)
    assert core.retention_explore == pytest.approx(0.55)
    core.set_training_progress(0.9)
    assert core.retention_explore == pytest.approx(0.1)


@pytest.mark.parametrize("mode", ["direction", "novelty", "reservoir"])
def test_replaying_recorded_decisions_reproduces_what_stepping_did_with_random_evictions(mode):
    core = _core(M=3, retention_explore_mode=mode)
    core.set_training_progress(0.0)  # ε = 1: evictions are random (exploration)
    T, B = 15, 3
    x = torch.randn(T, B, D)
    starts = torch.rand(T, B) < 0.15
    starts[0] = True
    state = core.initial_state(B)
    ys, traces = [], []
    for t in range(T):
        y, state, tr = core.forward_with_trace(x[t : t + 1], state, starts[t : t + 1])
        ys.append(y)
        traces.append(tr)
    record = {k: torch.cat([tr[k] for tr in traces]) for k in ("write_slot", "keep_u", "explore_dir", "entry_time")}
    y_rep, state_rep, tr_rep = core.forward_replay(x, core.initial_state(B), starts, record)
    torch.testing.assert_close(y_rep, torch.cat(ys))
    torch.testing.assert_close(tr_rep["entry_time"], record["entry_time"])
    for k in state:
        torch.testing.assert_close(state_rep[k], state[k])
    # Without the record the same call decides differently (the check above is not vacuous).
    _, _, tr_free = core.forward_with_trace(x, core.initial_state(B), starts)
    assert not torch.equal(tr_free["entry_time"], record["entry_time"])


def test_gradients_reach_the_write_embedding_of_an_entry_written_before_the_call():
    core = _core(M=4)
    B = 1
    _, state = core(torch.randn(2, B, D), core.initial_state(B), _starts(2, B))  # two entries stored
    entries = state["entries"].clone().requires_grad_()
    state = {**state, "entries": entries}
    y, _ = core(torch.randn(3, B, D), state, torch.zeros(3, B, dtype=torch.bool))
    y[-1, 0, core.mem_dim:].sum().backward()  # the read of the last step
    assert entries.grad[0, :2].abs().sum(-1).min() > 0  # both stored entries were read
    assert entries.grad[0, 2:].abs().sum() == 0  # empty slots were not
    assert core.embed[0].weight.grad.abs().sum() > 0


def test_learned_retention_comes_to_keep_the_entry_that_is_always_useful():
    """A stream where only the first step matters: the last step must read back its random value."""
    torch.manual_seed(0)
    T, B, M = 12, 64, 3
    core = StrategicMemoryCore(D, mem_dim=16, max_entries=M, n_heads=2, retention_coef=1.0,
                               retention_explore_fraction=0.6)
    decoder = torch.nn.Linear(2 * 16, 1)
    opt = torch.optim.Adam([*core.parameters(), *decoder.parameters()], lr=3e-3)
    starts = _starts(T, B)

    def batch():
        x = torch.randn(T, B, D)
        x[:, :, 1] = 0.0
        x[0, :, 1] = 1.0  # the flag of the useful step
        x[-1, :, 2] = 5.0  # the query step
        return x

    def kept_first(n_batches: int = 4) -> float:
        with torch.no_grad():
            hits = 0.0
            for _ in range(n_batches):
                _, state = core(batch(), core.initial_state(B), starts)
                hits += float(((state["times"] == 0) & (state["valid"] > 0.5)).any(-1).float().mean())
        return hits / n_batches

    core.set_training_progress(1.0)
    before = kept_first()
    n_iter = 250
    for i in range(n_iter):
        core.set_training_progress(i / n_iter)
        x = batch()
        y, _, trace = core.forward_with_trace(x, core.initial_state(B), starts)
        pred = decoder(y[-1]).squeeze(-1)
        loss = (pred - x[0, :, 0]).pow(2).mean()
        for value, weight in core.memory_losses(trace, torch.ones(T, B)).values():
            loss = loss + weight * value
        opt.zero_grad()
        loss.backward()
        opt.step()
    core.set_training_progress(1.0)
    after = kept_first()
    assert after > 0.95 and after > before + 0.3, (before, after)


def test_the_usefulness_loss_is_off_without_learned_retention():
    core = _core(learn_retention=False)
    T, B = 6, 2
    _, _, trace = core.forward_with_trace(torch.randn(T, B, D), core.initial_state(B), _starts(T, B))
    assert core.memory_losses(trace, torch.ones(T, B)) == {}


def test_the_buffer_sizes_its_entries_from_the_task():
    buf = StrategicMemoryBuffer(obs_dim=3, action_dim=1, mem_dim=32, max_entries=16, device="cpu")
    assert buf.input_dim == 5 and buf.output_dim == 64
    assert buf.memory_kwargs()["action_dim"] == 1


@pytest.mark.parametrize("kwargs, field", [
    ({"mem_dim": 10, "n_heads": 4}, "n_heads"),
    ({"max_entries": 0}, "max_entries"),
    ({"retention_coef": -1.0}, "retention_coef"),
    ({"retention_explore_end": 2.0}, "retention_explore_end"),
    ({"hindsight_replay": -1}, "hindsight_replay"),
    ({"retention_explore_mode": "greedy"}, "retention_explore_mode"),
    ({"hindsight_read_coef": -0.5, "hindsight_action_dim": 1}, "hindsight_read_coef"),
    ({"hindsight_read_coef": 0.5}, "hindsight_read_coef"),  # needs the hindsight inputs (hindsight_action_dim)
])
def test_invalid_settings_name_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        StrategicMemoryCore(D, **kwargs)


@pytest.mark.parametrize("failure_reward, T, n_iter", [(-1.0, 16, 200), (0.0, 8, 400)])
def test_hindsight_credit_teaches_retention_to_keep_the_step_that_explains_the_reward(failure_reward, T, n_iter):
    """No policy, no attention training: only the hindsight predictor and the usefulness loss. The reward at
    the last step is 1 if the action matches the sign shown at step 0, else ``failure_reward`` (-1 as in
    CueDelay, 0 as in the T-Mazes, where the trainer's episode-end flag makes the failures count);
    retention learns to keep step 0."""
    torch.manual_seed(0)
    B, M = 32, 3
    core = StrategicMemoryCore(D, mem_dim=16, max_entries=M, n_heads=2, retention_coef=1.0,
                               hindsight_action_dim=1, retention_explore_fraction=0.5, hindsight_replay=0)
    opt = torch.optim.Adam(core.parameters(), lr=3e-3)
    starts = _starts(T, B)

    def batch():
        x = torch.randn(T, B, D)
        x[:, :, 1] = 0.0
        x[0, :, 1] = 1.0
        x[0, :, 0] = torch.sign(x[0, :, 0])
        action = torch.randint(0, 2, (T, B)).float()
        reward = torch.zeros(T, B)
        reward[-1] = torch.where((2 * action[-1] - 1) == x[0, :, 0], 1.0, failure_reward)
        return x, action, reward

    end = torch.zeros(T, B, dtype=torch.bool)
    end[-1] = True

    def kept_first() -> float:
        with torch.no_grad():
            _, state = core(batch()[0], core.initial_state(B), starts)
        return float(((state["times"] == 0) & (state["valid"] > 0.5)).any(-1).float().mean())

    core.set_training_progress(1.0)
    before = kept_first()
    for i in range(n_iter):
        core.set_training_progress(i / n_iter)
        x, action, reward = batch()
        with torch.no_grad():
            _, _, acted = core.forward_with_trace(x, core.initial_state(B), starts)
        replay = {k: acted[k] for k in core.replay_spec()}
        replay.update(hindsight_reward=reward, hindsight_action=action.unsqueeze(-1), hindsight_end=end)
        _, _, trace = core.forward_replay(x, core.initial_state(B), starts, replay)
        losses = core.memory_losses(trace, torch.ones(T, B))
        assert set(losses) == {"memory/usefulness_loss", "memory/hindsight_loss"}
        loss = sum(w * v for v, w in losses.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    core.set_training_progress(1.0)
    after = kept_first()
    assert after > 0.9 and after > before + 0.3, (before, after)


@pytest.mark.parametrize("focus, outcome", [(0.0, 2.0), (0.25, 2.0), (0.25, 0.0)])
def test_the_focused_hindsight_loss_adds_each_pairs_error_weighted_by_its_responsibility(focus, outcome):
    """A fixed predictor (pair j predicts c_j): the loss is the mean pairwise error, plus with focus tau the
    errors weighted by softmax(-err / (tau r^2)) over the steps before the reward; an episode end with outcome
    0 puts all the weight on the pair that explains it best."""
    T, B, M = 8, 1, 3
    core = StrategicMemoryCore(D, mem_dim=8, max_entries=M, n_heads=2, hindsight_action_dim=1, hindsight_focus=focus)
    c = torch.linspace(-1.0, 2.0, M + T)

    class Fixed(torch.nn.Module):
        def forward(self, pair):
            return c.expand(pair.shape[0], -1).unsqueeze(-1)

    core.h_pred = Fixed()
    x = torch.randn(T, B, D)
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[0] = True
    reward = torch.zeros(T, B)
    reward[5] = outcome  # steps 0..4 of this call come before it (the store is empty: the episode starts here)
    end = torch.zeros(T, B, dtype=torch.bool)
    end[5] = True
    with torch.no_grad():
        _, _, acted = core.forward_with_trace(x, core.initial_state(B), starts)
    replay = {k: acted[k] for k in core.replay_spec()}
    replay.update(hindsight_reward=reward, hindsight_action=torch.zeros(T, B, 1), hindsight_end=end)
    _, _, trace = core.forward_replay(x, core.initial_state(B), starts, replay)
    err = (c[M:M + 5] - outcome) ** 2
    expected = err.mean()
    if focus and outcome:
        expected = expected + (torch.softmax(-err / (focus * outcome**2), 0) * err).sum()
    elif focus:
        expected = expected + err.min()
    assert float(trace["hindsight_pair_loss"]) == pytest.approx(float(expected), rel=1e-5)


def test_a_negative_hindsight_focus_is_refused():
    with pytest.raises(ConfigError, match="hindsight_focus"):
        StrategicMemoryCore(D, hindsight_action_dim=1, hindsight_focus=-1.0)


class _PositionPredictor(torch.nn.Module):
    """A fixed hindsight predictor: pair ``j`` (its position in the padded context) predicts ``c[j]``."""

    def __init__(self, c: torch.Tensor) -> None:
        super().__init__()
        self.c = c

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        return self.c[: pair.shape[1]].expand(pair.shape[0], -1).unsqueeze(-1)


def _hindsight_pass(core: StrategicMemoryCore, x: torch.Tensor, reward: torch.Tensor) -> dict:
    T, B = reward.shape
    starts = _starts(T, B)
    with torch.no_grad():
        _, _, acted = core.forward_with_trace(x, core.initial_state(B), starts)
    replay = {k: acted[k] for k in core.replay_spec()}
    replay.update(hindsight_reward=reward, hindsight_action=torch.zeros(T, B, 1))
    return core.forward_replay(x, core.initial_state(B), starts, replay)[2]


def test_the_hindsight_replay_tops_a_pass_up_with_the_contexts_of_earlier_passes():
    """Pass 1 is rewarded at step 5, pass 2 at step 3: pass 2's loss averages the pairs of both contexts (the
    replayed one re-read from its 5 raw earlier steps), and only passes with gradients add to the replay."""
    T, M = 8, 3
    core = StrategicMemoryCore(D, mem_dim=8, max_entries=M, n_heads=2, hindsight_action_dim=1, hindsight_replay=4)
    c = torch.linspace(-1.0, 2.0, M + T)
    core.h_pred = _PositionPredictor(c)
    r1, r2 = torch.zeros(T, 1), torch.zeros(T, 1)
    r1[5], r2[3] = 2.0, -1.0
    with torch.no_grad():
        _hindsight_pass(core, torch.randn(T, 1, D), r1)
    assert len(core.hindsight_replay) == 0
    first = _hindsight_pass(core, torch.randn(T, 1, D), r1)
    assert len(core.hindsight_replay) == 1
    assert float(first["hindsight_pair_loss"]) == pytest.approx(float(((c[M:M + 5] - 2.0) ** 2).mean()), rel=1e-5)
    second = _hindsight_pass(core, torch.randn(T, 1, D), r2)
    errs = torch.cat([(c[M:M + 3] + 1.0) ** 2, (c[:5] - 2.0) ** 2])  # this pass's context, then the replayed one
    assert float(second["hindsight_pair_loss"]) == pytest.approx(float(errs.mean()), rel=1e-5)
    assert len(core.hindsight_replay) == 2


def test_the_hindsight_replay_holds_at_most_its_capacity_and_draws_distinct_contexts():
    core = StrategicMemoryCore(D, mem_dim=8, max_entries=2, n_heads=2, hindsight_action_dim=1, hindsight_replay=3)
    T = 6
    for _ in range(5):
        reward = torch.zeros(T, 2)
        reward[-1] = 1.0
        _hindsight_pass(core, torch.randn(T, 2, D), reward)
    assert len(core.hindsight_replay) == 3
    drawn = core.hindsight_replay.sample(10, torch.device("cpu"))
    assert drawn is not None and drawn.reward.shape == (3,)
    assert len({tuple(row.flatten().tolist()) for row in drawn.raw}) == 3
    assert drawn.past.sum(-1).tolist() == [T - 1] * 3  # every context keeps its T-1 earlier steps


def test_the_hindsight_replay_singles_out_the_cue_from_one_rewarded_episode_per_pass():
    """One rewarded 16-step episode per pass (as a PPO minibatch at a long delay): topped up with replayed
    contexts, the predictor learns that step 0 explains the reward within 600 passes (without the replay it
    is still at the plateau after 600, error ~1.0 for every pair)."""
    torch.manual_seed(0)
    T, M = 16, 4
    core = StrategicMemoryCore(D, mem_dim=16, max_entries=M, n_heads=2, hindsight_action_dim=1,
                               hindsight_max_steps=32, hindsight_replay=256)
    opt = torch.optim.Adam(core.parameters(), lr=3e-3)

    def episode(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = torch.sign(torch.randn(T, n, D))
        x[:, :, 1] = 0.0
        x[0, :, 1] = 1.0
        action = torch.randint(0, 2, (T, n)).float()
        reward = torch.zeros(T, n)
        reward[-1] = torch.where((2 * action[-1] - 1) == x[0, :, 0], 1.0, -1.0)
        return x, action, reward

    def pass_(x, action, reward):
        starts = _starts(T, x.shape[1])
        replay = {"hindsight_reward": reward, "hindsight_action": action.unsqueeze(-1)}
        return core.forward_replay(x, core.initial_state(x.shape[1]), starts, replay)[2]

    for _ in range(600):
        trace = pass_(*episode(1))
        loss = trace["hindsight_loss"] + trace["hindsight_usefulness"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, action, reward = episode(64)
    with torch.no_grad():
        e = core.embed(torch.cat([x.transpose(0, 1), time_features(torch.arange(T).float().expand(64, T))], -1))
        pair = torch.cat([e[:, :-1], e[:, -1:].expand(-1, T - 1, -1), action[-1].view(64, 1, 1).expand(-1, T - 1, 1)], -1)
        err = (core.h_pred(pair).squeeze(-1) - reward[-1].unsqueeze(1)) ** 2
    assert float(err[:, 0].mean()) < 0.5 < float(err[:, 1:].mean()), (float(err[:, 0].mean()), float(err[:, 1:].mean()))


def test_the_hindsight_replay_keeps_one_copy_of_a_context_seen_again():
    """PPO's epochs pass over the same rollout several times: each rewarded context is stored once."""
    core = StrategicMemoryCore(D, mem_dim=8, max_entries=2, n_heads=2, hindsight_action_dim=1, hindsight_replay=16)
    T = 6
    x = torch.randn(T, 3, D)
    reward = torch.zeros(T, 3)
    reward[-1] = 1.0
    for _ in range(4):
        _hindsight_pass(core, x, reward)
    assert len(core.hindsight_replay) == 3


def test_the_hindsight_replay_keeps_only_contexts_that_hold_their_episode_from_its_first_step():
    """A pass whose episode began in an earlier call sees only the stored entries of its start: not replayed."""
    core = StrategicMemoryCore(D, mem_dim=8, max_entries=2, n_heads=2, hindsight_action_dim=1, hindsight_replay=16)
    T = 6
    reward = torch.zeros(T, 1)
    reward[-1] = 1.0
    replay = {"hindsight_reward": reward, "hindsight_action": torch.zeros(T, 1, 1)}
    no_start = torch.zeros(T, 1, dtype=torch.bool)
    _, state = core(torch.randn(T, 1, D), core.initial_state(1), _starts(T, 1))
    state = {**state, "times": state["times"] + 10.0, "step": state["step"] + 10.0}  # the store lost step 0
    core.forward_replay(torch.randn(T, 1, D), state, no_start, replay)  # a later call of the same episode
    assert len(core.hindsight_replay) == 0
    core.forward_replay(torch.randn(T, 1, D), core.initial_state(1), _starts(T, 1), replay)
    assert len(core.hindsight_replay) == 1


def test_the_read_loss_trains_the_agents_read_to_carry_the_cue_that_decides_the_outcome():
    """Outcome prediction from the read the agent acted on: attention at the rewarded step moves onto the cue."""
    torch.manual_seed(0)
    core = StrategicMemoryCore(D, mem_dim=16, max_entries=8, n_heads=2, hindsight_action_dim=1,
                               hindsight_read_coef=1.0, hindsight_replay=0)
    core.set_training_progress(1.0)
    opt = torch.optim.Adam(core.parameters(), lr=3e-3)
    T, B = 8, 64

    def episodes():
        x = _flagged_stream(T, B)
        action = torch.randint(0, 2, (T, B)).float()
        reward = torch.zeros(T, B)
        reward[-1] = torch.where((2 * action[-1] - 1) == x[0, :, 0], 1.0, -1.0)
        return x, {"hindsight_reward": reward, "hindsight_action": action.unsqueeze(-1)}

    losses = []
    for _ in range(300):
        x, replay = episodes()
        trace = core.forward_replay(x, core.initial_state(B), _starts(T, B), replay)[2]
        loss = trace["hindsight_read_loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert sum(losses[:20]) / 20 > 0.9 and sum(losses[-20:]) / 20 < 0.2
    x, replay = episodes()
    with torch.no_grad():
        trace = core.forward_replay(x, core.initial_state(B), _starts(T, B), replay)[2]
    held_cue = trace["entry_time"][-1] == 0  # [B, M]
    assert float((trace["attention"][-1, :, :8] * held_cue).sum(-1).mean()) > 0.5
    assert set(core.memory_losses(trace, torch.ones(T, B))) >= {"memory/read_loss"}
