"""HCAMCore: top-k chunk selection, two-level attention by hand, chunk bookkeeping across calls, resets,
trace layout, step cost, arguments, and learning."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from helpers import cue_delay_success
from tracerl.memory import make_memory
from tracerl.memory.hcam import HCAMCore

D = 3


def _core(**kwargs) -> HCAMCore:
    torch.manual_seed(0)
    return HCAMCore(input_dim=D, **{"hidden_size": 8, "num_heads": 2, **kwargs})


def _mha(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, heads: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain multi-head attention of one query ``[d]`` over ``[n, d]``: (result ``[d]``, weights ``[heads, n]``)."""
    n, d = keys.shape
    dh = d // heads
    qh, kh, vh = q.view(heads, dh), keys.view(n, heads, dh), values.view(n, heads, dh)
    w = torch.softmax(torch.einsum("he,nhe->hn", qh, kh) / math.sqrt(dh), dim=-1)
    return torch.einsum("hn,nhe->he", w, vh).reshape(d), w


class Reference:
    """HCAM for one row and one layer, written from the module docstring with Python lists: a list of
    complete chunks (each a list of C layer inputs, oldest first) and the current chunk."""

    def __init__(self, core: HCAMCore) -> None:
        self.core, self.block = core, core.blocks[0]
        self.chunks: list[list[torch.Tensor]] = []
        self.current: list[torch.Tensor] = []

    def step(self, x: torch.Tensor, start: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``y`` ``[d]`` and the coarse weight of every memory slot ``[N]``."""
        core, blk = self.core, self.block
        N, C, d, H = core.num_chunks, core.chunk_len, core.hidden_size, core.num_heads
        if start:
            self.chunks, self.current = [], []
        h = core.embed(x)
        self.current.append(h)
        u = blk.ln(h)
        P = blk.position
        # Local attention over the current chunk, positions counted back from the step itself (at C - 1).
        r = len(self.current)
        wq, wk, wv = blk.local_qkv.weight.split(d)
        bq, bk, bv = blk.local_qkv.bias.split(d)
        entries = torch.stack([blk.ln(m) + P[C - r + j] for j, m in enumerate(self.current)])
        local, _ = _mha(F.linear(u, wq, bq), F.linear(entries, wk, bk), F.linear(entries, wv, bv), H)
        # Coarse attention over the chunks' mean, top-k, renormalized.
        slot_weights = torch.zeros(N)
        read = torch.zeros(d)
        if self.chunks:
            q = blk.coarse_q(u)
            z = torch.stack([q @ blk.coarse_k(blk.ln(torch.stack(c).mean(0))) / math.sqrt(d) for c in self.chunks])
            k = min(core.top_k, len(self.chunks))
            top = torch.topk(z, k).indices
            w = torch.softmax(z[top], dim=0)
            ck, cv = blk.chunk_kv.weight.split(d)
            bck, bcv = blk.chunk_kv.bias.split(d)
            qc = blk.chunk_q(u)
            for weight, c in zip(w, top.tolist()):
                content = torch.stack([blk.ln(m) + P[i] for i, m in enumerate(self.chunks[c])])
                result, _ = _mha(qc, F.linear(content, ck, bck), F.linear(content, cv, bcv), H)
                read = read + weight * result
                slot_weights[N - len(self.chunks) + c] = weight
        a = h + blk.local_out(local) + blk.chunk_out(read)
        out = a + blk.ff(blk.ln_ff(a))
        if len(self.current) == C:
            self.chunks = (self.chunks + [self.current])[-N:]
            self.current = []
        return core.ln_out(out), slot_weights


def _run_reference(core, x, starts):
    T, B, _ = x.shape
    refs = [Reference(core) for _ in range(B)]
    ys, ws = torch.zeros(T, B, core.hidden_size), torch.zeros(T, B, core.num_chunks)
    for t in range(T):
        for b in range(B):
            ys[t, b], ws[t, b] = refs[b].step(x[t, b], bool(starts[t, b]))
    return ys, ws, refs


def test_top_k_reads_the_chunks_with_the_highest_summary_scores():
    """A hand-built memory: chunk c's steps average to the one-hot e_c (their spread cancels), and the query
    scores dimension c by a[c], so the two best chunks are slots 0 and 2, not the most recent ones."""
    core = _core(chunk_len=2, num_chunks=4, top_k=2)
    blk = core.blocks[0]
    a = torch.tensor([3.0, 0.0, 2.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    with torch.no_grad():
        blk.coarse_q.weight.zero_()
        blk.coarse_q.bias.copy_(a)  # the coarse query is a whatever the input
        blk.coarse_k.weight.copy_(torch.eye(8))
        blk.coarse_k.bias.zero_()
    state = core.initial_state(1)
    g = torch.Generator().manual_seed(0)
    for c in range(4):
        spread = torch.randn(8, generator=g)
        state["memory_0"][0, c, 0] = torch.eye(8)[c] + spread
        state["memory_0"][0, c, 1] = torch.eye(8)[c] - spread
    state["chunk_valid"][:] = 1.0
    x = torch.randn(1, 1, D, generator=g)
    starts = torch.zeros(1, 1, dtype=torch.bool)
    with torch.no_grad():
        _, _, trace = core.forward_with_trace(x, state, starts)
    z = torch.stack([a @ F.layer_norm(torch.eye(8)[c], (8,)) / math.sqrt(8) for c in range(4)])
    expected = torch.zeros(4)
    expected[[0, 2]] = torch.softmax(z[[0, 2]], dim=0)
    torch.testing.assert_close(trace["chunk_weights"][0, 0], expected)
    assert torch.all(trace["chunk_attention"][0, 0, [1, 3]] == 0)
    torch.testing.assert_close(trace["chunk_attention"][0, 0, [0, 2]].sum(-1), torch.ones(2))
    # An empty slot is never read: without slot 0, the best two are slots 2 and 3.
    state["chunk_valid"][0, 0] = 0.0
    with torch.no_grad():
        _, _, trace = core.forward_with_trace(x, state, starts)
    expected = torch.zeros(4)
    expected[[2, 3]] = torch.softmax(z[[2, 3]], dim=0)
    torch.testing.assert_close(trace["chunk_weights"][0, 0], expected)


def test_with_k_equal_to_the_number_of_chunks_it_is_two_level_attention_by_hand():
    """Every chunk read, weighted by a softmax over all summaries: the whole block against the reference."""
    core = _core(chunk_len=3, num_chunks=3, top_k=3)
    T, B = 14, 2
    g = torch.Generator().manual_seed(1)
    x = torch.randn(T, B, D, generator=g)
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[0] = True
    with torch.no_grad():
        y, _, trace = core.forward_with_trace(x, core.initial_state(B), starts)
        y_ref, w_ref, _ = _run_reference(core, x, starts)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(trace["chunk_weights"], w_ref, atol=1e-6, rtol=1e-5)
    # From step 9 on all three chunks are held, and each gets a share.
    assert torch.all(trace["chunk_weights"][10:] > 0)


def test_chunk_boundaries_are_kept_across_calls_of_odd_lengths():
    """State carried through calls of 3, 5, 7, 1, 9 and 2 steps, with episode starts inside calls: outputs,
    coarse weights and the stored chunks equal the list-based reference step by step."""
    core = _core(chunk_len=3, num_chunks=2, top_k=1)
    lengths = [3, 5, 7, 1, 9, 2]
    T, B = sum(lengths), 3
    g = torch.Generator().manual_seed(2)
    x = torch.randn(T, B, D, generator=g)
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[0] = True
    starts[11, 1] = True  # inside the 7-step call, in the middle of a chunk
    starts[15, 2] = True  # the 1-step call
    with torch.no_grad():
        y_ref, w_ref, refs = _run_reference(core, x, starts)
        state, ys, ws, at = core.initial_state(B), [], [], 0
        for n in lengths:
            y, state, trace = core.forward_with_trace(x[at : at + n], state, starts[at : at + n])
            ys.append(y)
            ws.append(trace["chunk_weights"])
            at += n
    torch.testing.assert_close(torch.cat(ys), y_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat(ws), w_ref, atol=1e-6, rtol=1e-5)
    N, C = core.num_chunks, core.chunk_len
    with torch.no_grad():
        for b, ref in enumerate(refs):
            held = len(ref.chunks)
            assert held > 0
            assert state["chunk_valid"][b].tolist() == [0.0] * (N - held) + [1.0] * held
            for c, chunk in enumerate(ref.chunks):
                torch.testing.assert_close(state["memory_0"][b, N - held + c], torch.stack(chunk))
            open_steps = len(ref.current)
            assert state["recent_valid"][b].tolist() == [0.0] * (C - open_steps) + [1.0] * open_steps
            if open_steps:
                torch.testing.assert_close(state["recent_0"][b, C - open_steps :], torch.stack(ref.current))


def test_an_episode_start_clears_the_memory():
    core = _core(chunk_len=2, num_chunks=3, top_k=2)
    T, B = 9, 2
    g = torch.Generator().manual_seed(3)
    x = torch.randn(T, B, D, generator=g)
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[0] = True
    with torch.no_grad():
        _, full, _ = core.forward_with_trace(x, core.initial_state(B), starts)
        assert torch.all(full["chunk_valid"] == 1.0)  # 9 steps: 4 chunks written, the last 3 kept
        restart = torch.tensor([[True, False]])
        _, after, trace = core.forward_with_trace(x[:1], full, restart)
    assert torch.all(after["memory_0"][0] == 0) and torch.all(after["chunk_valid"][0] == 0)
    assert after["recent_valid"][0].tolist() == [0.0, 1.0]  # only the new episode's first step
    assert torch.all(after["chunk_valid"][1] == 1.0)  # the other row keeps its memory...
    assert torch.all(trace["chunk_weights"][0, 0] == 0)  # ...and the restarted row reads nothing
    assert trace["chunk_weights"][0, 1].sum() == pytest.approx(1.0)
    # Inside a call: after a start, nothing is read until the new episode's first chunk is complete.
    starts[0] = False  # continue from the full memory...
    starts[4, 0] = True  # ...and restart row 0 at step 4
    with torch.no_grad():
        _, _, trace = core.forward_with_trace(x, full, starts)
    w = trace["chunk_weights"][:, 0].sum(-1)
    assert torch.all(w[4:6] == 0) and torch.all((w[6:] - 1).abs() < 1e-5) and torch.all(w[:4] > 0.99)


def test_trace_shapes_and_weights():
    core = _core(chunk_len=4, num_chunks=5, top_k=2, num_layers=2)
    T, B = 30, 3
    g = torch.Generator().manual_seed(4)
    x = torch.randn(T, B, D, generator=g)
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[0] = True
    starts[13, 1] = True
    with torch.no_grad():
        _, _, trace = core.forward_with_trace(x, core.initial_state(B), starts)
    assert trace["chunk_weights"].shape == (T, B, 5)
    assert trace["chunk_attention"].shape == (T, B, 5, 4)
    assert trace["local_attention"].shape == (T, B, 4)
    selected = trace["chunk_weights"] > 0
    assert torch.all(selected.sum(-1) <= 2)
    total = trace["chunk_weights"].sum(-1)
    reads = torch.ones(T, B)
    reads[:4] = 0  # the first chunk (steps 0-3) is complete after step 3
    reads[13:17, 1] = 0  # row 1 restarts at step 13: nothing to read until step 17
    torch.testing.assert_close(total, reads)
    inner = trace["chunk_attention"].sum(-1)
    torch.testing.assert_close(inner, selected.float())  # a distribution over each read chunk's steps, else 0
    torch.testing.assert_close(trace["local_attention"].sum(-1), torch.ones(T, B))


def test_a_step_projects_only_the_k_chunks_it_reads():
    """Step cost: the within-chunk keys and values are computed for top_k * chunk_len stored steps, not for
    the whole memory (num_chunks * chunk_len)."""
    core = _core(chunk_len=4, num_chunks=16, top_k=2)
    B = 3
    rows: list[int] = []
    handle = core.blocks[0].chunk_kv.register_forward_hook(lambda m, inp, out: rows.append(inp[0].numel() // 8))
    state = core.initial_state(B)
    state["chunk_valid"][:] = 1.0
    with torch.no_grad():
        core(torch.randn(1, B, D), state, torch.zeros(1, B, dtype=torch.bool))
    handle.remove()
    assert rows == [B * 2 * 4]


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"chunk_len": 0}, "chunk_len"),
        ({"num_chunks": 0}, "num_chunks"),
        ({"top_k": 0}, "top_k"),
        ({"top_k": 9, "num_chunks": 8}, "top_k"),
        ({"hidden_size": 10, "num_heads": 4}, "num_heads"),
        ({"num_layers": 0}, "num_layers"),
        ({"ff_size": 0}, "ff_size"),
    ],
)
def test_invalid_arguments_raise_value_error_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        HCAMCore(input_dim=D, **kwargs)


def test_top_k_defaults_to_at_most_four_chunks():
    assert HCAMCore(input_dim=D, num_chunks=2).top_k == 2
    assert HCAMCore(input_dim=D, num_chunks=16).top_k == 4


def test_registered_as_hcam():
    core = make_memory("hcam", input_dim=D, hidden_size=8, num_layers=2, chunk_len=2, num_chunks=3, top_k=1)
    assert isinstance(core, HCAMCore) and core.memory_len == 6 and len(core.blocks) == 2


def test_ppo_learns_cue_delay_8():
    """Chunks of 4 steps: the cue (step 0) is in the first chunk, which at the decision (step 7) is in the
    memory, not in the current chunk, so the agent must read it through the coarse and detailed attention."""
    success = cue_delay_success("hcam", 24_576, learning_rate=1e-3,
                                memory_kwargs={"chunk_len": 4, "num_chunks": 2, "top_k": 1})
    assert success >= 0.9, success


def test_the_cli_trains_saves_and_reloads_an_hcam_agent(tmp_path):
    from tracerl import TraceRL
    from tracerl.cli import main

    out = tmp_path / "hcam"
    args = ["train", "--memory", "hcam", "--steps", "256", "--n-envs", "2", "--n-steps", "64", "--eval-episodes", "0",
            "--out", str(out), "--no-progress", "--verbose", "0"]
    assert main(args) == 0
    agent = TraceRL.load(out / "agent.tracerl")
    assert type(agent.policy.core) is HCAMCore
    assert agent.num_timesteps >= 256


def test_hcam_is_a_benchmark_agent_whose_memory_covers_the_delay():
    from tracerl.bench.agents import available_agents, core_settings

    assert "tracerl-hcam" in available_agents()
    for delay in (8, 64, 100, 1024):
        kwargs = core_settings("hcam", {"delay": delay})["memory_kwargs"]
        core = HCAMCore(input_dim=D, hidden_size=8, num_heads=2, **kwargs)
        assert core.memory_len >= delay  # the cue's chunk is still held at the decision
        if delay >= 32:  # ...and no more chunks than that (at least 4, the default top_k)
            assert core.memory_len < delay + core.chunk_len


def test_the_one_step_plan_equals_the_sequence_plan_on_any_state():
    """Acting uses a shorter bookkeeping path for T = 1; on noisy validity masks (gaps, full current
    chunks) and with or without a reset it must plan exactly what the general path plans."""
    from tracerl.memory.hcam import _plan_sequence, _plan_step

    g = torch.Generator().manual_seed(5)
    B, N, C = 64, 3, 4
    chunk_valid = torch.randn(B, N, generator=g)
    recent_valid = torch.randn(B, C, generator=g) + 0.5
    reset = torch.rand(B, generator=g) < 0.3
    one = _plan_step(reset, chunk_valid, recent_valid)
    general = _plan_sequence(reset.unsqueeze(0), chunk_valid, recent_valid)
    assert bool(((recent_valid > 0.5).all(1)).any()) and bool(reset.any())  # the edge cases occur
    for name in ("visible", "slot", "local", "memory_entries", "memory_keep", "memory_valid", "recent_keep",
                 "recent_valid"):
        a, b = getattr(one, name), getattr(general, name)
        if name == "slot":
            a, b = a[one.visible], b[general.visible]
        if name == "memory_entries":
            a, b = a[one.memory_keep], b[general.memory_keep]
        assert torch.equal(a, b), name


def test_inspection_records_the_chunk_weights_of_every_step(tmp_path):
    from tracerl import TraceRL

    agent = TraceRL(env="tracerl/CueDelay-v0", env_kwargs={"delay": 8}, memory="hcam", seed=0, verbose=0,
                    memory_kwargs={"chunk_len": 4, "num_chunks": 2, "top_k": 1})
    report = agent.inspect(episodes=4, out=tmp_path)
    steps = report.episodes[0]["steps"]
    assert len(steps) == 8
    # Steps 0-3 fill the first chunk (nothing stored to read); from step 4 on it is read with weight 1.
    assert [sum(s["chunk_weights"]) for s in steps] == pytest.approx([0.0] * 4 + [1.0] * 4)
    assert steps[5]["chunk_weights"] == pytest.approx([0.0, 1.0])
    assert len(steps[5]["chunk_attention"][1]) == 4 and sum(steps[5]["chunk_attention"][1]) == pytest.approx(1.0)


@pytest.mark.parametrize(("chunk_len", "num_chunks", "top_k", "num_layers"),
                         [(1, 3, 2, 1), (2, 2, 1, 2), (3, 4, 2, 1), (5, 2, 2, 2)])
def test_small_chunks_step_equals_sequence_from_noisy_states(chunk_len, num_chunks, top_k, num_layers):
    """Many writes and evictions inside one call (the contract suite's defaults write few chunks), from a
    state with random contents and random validity masks, with episode starts: outputs, next state and trace
    are the same stepped and in one call."""
    core = _core(chunk_len=chunk_len, num_chunks=num_chunks, top_k=top_k, num_layers=num_layers)
    T, B = 31, 4
    g = torch.Generator().manual_seed(chunk_len * 10 + num_chunks)
    x = torch.randn(T, B, D, generator=g)
    starts = torch.rand(T, B, generator=g) < 0.1
    state0 = {k: torch.randn(v.shape, generator=g) + (0.5 if "valid" in k else 0.0)
              for k, v in core.initial_state(B).items()}
    with torch.no_grad():
        y_seq, s_seq, tr_seq = core.forward_with_trace(x, state0, starts)
        state, ys, trs = state0, [], []
        for t in range(T):
            y, state, tr = core.forward_with_trace(x[t : t + 1], state, starts[t : t + 1])
            ys.append(y)
            trs.append(tr)
    torch.testing.assert_close(torch.cat(ys), y_seq, atol=1e-5, rtol=1e-5)
    for k in s_seq:
        torch.testing.assert_close(state[k], s_seq[k], atol=1e-5, rtol=1e-5)
    for k in tr_seq:
        torch.testing.assert_close(torch.cat([tr[k] for tr in trs]), tr_seq[k], atol=1e-5, rtol=1e-5)
    assert (tr_seq["chunk_weights"] > 0).sum(-1).max() == min(top_k, num_chunks)  # the top-k was exercised
