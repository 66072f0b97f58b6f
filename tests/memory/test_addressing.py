"""NTM / DNC addressing functions: gradchecks in float64 and hand-computed answers."""

from __future__ import annotations

import torch
from torch.autograd import gradcheck

from tracerl.memory import addressing as addr

D64 = torch.float64


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=D64)


def _distribution(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.softmax(_rand(*shape, seed=seed), dim=-1)


def _onehot(n: int, i: int) -> torch.Tensor:
    v = torch.zeros(n, dtype=D64)
    v[i] = 1.0
    return v


# --- gradchecks ------------------------------------------------------------------------------------


def test_gradcheck_content_weighting():
    keys = _rand(2, 3, 4, seed=1).requires_grad_()
    strengths = (1.0 + _rand(2, 3, seed=2).abs()).requires_grad_()
    memory = _rand(2, 5, 4, seed=3).requires_grad_()
    assert gradcheck(addr.content_weighting, (keys, strengths, memory))


def test_gradcheck_interpolate_shift_sharpen():
    content = _distribution(2, 2, 6, seed=1).requires_grad_()
    previous = _distribution(2, 2, 6, seed=2).requires_grad_()
    gate = torch.sigmoid(_rand(2, 2, seed=3)).requires_grad_()
    shift = _distribution(2, 2, 3, seed=4).requires_grad_()
    gamma = (1.0 + _rand(2, 2, seed=5).abs()).requires_grad_()

    def pipeline(c, p, g, s, y):
        return addr.sharpen(addr.circular_shift(addr.interpolate(c, p, g), s), y)

    assert gradcheck(pipeline, (content, previous, gate, shift, gamma))


def test_gradcheck_wide_shift():
    weights = _distribution(1, 2, 7, seed=6).requires_grad_()
    shift = _distribution(1, 2, 5, seed=7).requires_grad_()
    assert gradcheck(addr.circular_shift, (weights, shift))


def test_gradcheck_erase_and_add():
    memory = _rand(2, 4, 3, seed=1).requires_grad_()
    weights = _distribution(2, 2, 4, seed=2).requires_grad_()
    erase = torch.sigmoid(_rand(2, 2, 3, seed=3)).requires_grad_()
    add = _rand(2, 2, 3, seed=4).requires_grad_()
    assert gradcheck(addr.erase_and_add, (memory, weights, erase, add))


def test_gradcheck_usage_and_allocation():
    # Distinct usages (no ties: sorting is piecewise) inside (0, 1).
    usage = torch.tensor([[0.15, 0.62, 0.33, 0.91, 0.47], [0.7, 0.05, 0.52, 0.28, 0.83]], dtype=D64)
    usage.requires_grad_()
    assert gradcheck(addr.allocation_weighting, (usage,))
    prev_write = (0.5 * _distribution(2, 5, seed=1)).requires_grad_()
    free = torch.sigmoid(_rand(2, 3, seed=2)).requires_grad_()
    prev_read = _distribution(2, 3, 5, seed=3).requires_grad_()
    assert gradcheck(addr.update_usage, (usage, prev_write, free, prev_read))


def test_gradcheck_link_precedence_and_read_weighting():
    link = (0.3 * torch.rand(2, 4, 4, dtype=D64, generator=torch.Generator().manual_seed(0))).requires_grad_()
    precedence = (0.5 * _distribution(2, 4, seed=1)).requires_grad_()
    write = (0.8 * _distribution(2, 4, seed=2)).requires_grad_()
    prev_read = _distribution(2, 3, 4, seed=3).requires_grad_()
    content = _distribution(2, 3, 4, seed=4).requires_grad_()
    modes = _distribution(2, 3, 3, seed=5).requires_grad_()

    def step(L, p, w, r, c, m):
        new_link = addr.update_link(L, p, w)
        fwd, bwd = addr.directional_weightings(new_link, r)
        return addr.dnc_read_weighting(bwd, c, fwd, m), addr.update_precedence(p, w)

    assert gradcheck(step, (link, precedence, write, prev_read, content, modes))


def test_gradcheck_write_weighting():
    alloc = _distribution(2, 4, seed=1).requires_grad_()
    content = _distribution(2, 4, seed=2).requires_grad_()
    gw = torch.sigmoid(_rand(2, seed=3)).requires_grad_()
    ga = torch.sigmoid(_rand(2, seed=4)).requires_grad_()
    assert gradcheck(addr.write_weighting, (alloc, content, gw, ga))


# --- known answers ---------------------------------------------------------------------------------


def test_content_weighting_prefers_the_most_similar_row():
    memory = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]], dtype=D64)
    key = torch.tensor([[[0.0, 3.0]]], dtype=D64)
    w = addr.content_weighting(key, torch.tensor([[50.0]], dtype=D64), memory)
    assert w.shape == (1, 1, 3)
    assert int(w.argmax()) == 1 and w[0, 0, 1] > 0.99
    sim = addr.cosine_similarity(key, memory)
    torch.testing.assert_close(sim, torch.tensor([[[0.0, 1.0, 0.0]]], dtype=D64), atol=1e-6, rtol=0)


def test_shift_by_plus_one_moves_the_peak_circularly():
    N = 5
    for i in range(N):
        w = _onehot(N, i).view(1, 1, N)
        up = addr.circular_shift(w, torch.tensor([[[0.0, 0.0, 1.0]]], dtype=D64))
        down = addr.circular_shift(w, torch.tensor([[[1.0, 0.0, 0.0]]], dtype=D64))
        stay = addr.circular_shift(w, torch.tensor([[[0.0, 1.0, 0.0]]], dtype=D64))
        torch.testing.assert_close(up.flatten(), _onehot(N, (i + 1) % N))
        torch.testing.assert_close(down.flatten(), _onehot(N, (i - 1) % N))
        torch.testing.assert_close(stay.flatten(), _onehot(N, i))
    # A split shift spreads the mass; width 5 reaches two slots away.
    w = _onehot(N, 0).view(1, 1, N)
    spread = addr.circular_shift(w, torch.tensor([[[0.25, 0.0, 0.75]]], dtype=D64)).flatten()
    torch.testing.assert_close(spread, torch.tensor([0.0, 0.75, 0.0, 0.0, 0.25], dtype=D64))
    two = addr.circular_shift(w, torch.tensor([[[0.0, 0.0, 0.0, 0.0, 1.0]]], dtype=D64)).flatten()
    torch.testing.assert_close(two, _onehot(N, 2))


def test_sharpen_known_answer_and_shift_then_sharpen():
    w = torch.tensor([[[0.5, 0.25, 0.25]]], dtype=D64)
    sharp = addr.sharpen(w, torch.tensor([[2.0]], dtype=D64))
    torch.testing.assert_close(sharp.flatten(), torch.tensor([2 / 3, 1 / 6, 1 / 6], dtype=D64), atol=1e-5, rtol=0)
    # A blurred peak at slot 3 of 4, shifted by +1 (wraps to slot 0) and sharpened with γ = 10.
    blurred = torch.tensor([[[0.1, 0.1, 0.1, 0.7]]], dtype=D64)
    out = addr.sharpen(addr.circular_shift(blurred, torch.tensor([[[0.0, 0.0, 1.0]]], dtype=D64)),
                       torch.tensor([[10.0]], dtype=D64))
    assert int(out.argmax()) == 0 and out[0, 0, 0] > 0.99


def test_ntm_address_with_closed_gate_follows_the_previous_weighting():
    previous = _onehot(4, 1).view(1, 1, 4)
    w = addr.ntm_address(
        keys=_rand(1, 1, 3),
        strengths=torch.tensor([[5.0]], dtype=D64),
        gates=torch.tensor([[0.0]], dtype=D64),
        shifts=torch.tensor([[[0.0, 0.0, 1.0]]], dtype=D64),
        gammas=torch.tensor([[1.0]], dtype=D64),
        previous=previous,
        memory=_rand(1, 4, 3, seed=1),
    )
    torch.testing.assert_close(w.flatten(), _onehot(4, 2), atol=1e-5, rtol=0)


def test_erase_and_add_known_answer():
    memory = torch.ones(1, 3, 2, dtype=D64)
    weights = torch.tensor([[[1.0, 0.5, 0.0]]], dtype=D64)
    erase = torch.tensor([[[1.0, 0.0]]], dtype=D64)
    add = torch.tensor([[[2.0, 3.0]]], dtype=D64)
    out = addr.erase_and_add(memory, weights, erase, add)
    expected = torch.tensor([[[2.0, 4.0], [1.5, 2.5], [1.0, 1.0]]], dtype=D64)
    torch.testing.assert_close(out, expected)
    # Two heads: erasures multiply, additions add.
    weights2 = torch.tensor([[[1.0, 0.0, 0.0], [0.5, 0.0, 0.0]]], dtype=D64)
    erase2 = torch.tensor([[[0.5, 0.5], [1.0, 0.0]]], dtype=D64)
    add2 = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]], dtype=D64)
    out2 = addr.erase_and_add(memory, weights2, erase2, add2)
    # row 0: [1 * (1 - .5) * (1 - .5) + 1, 1 * (1 - .5) * 1 + 1]
    torch.testing.assert_close(out2[0, 0], torch.tensor([1.25, 1.5], dtype=D64))
    torch.testing.assert_close(out2[0, 1:], memory[0, 1:])
    reads = addr.read(out, torch.tensor([[[0.0, 1.0, 0.0]]], dtype=D64))
    torch.testing.assert_close(reads.flatten(), torch.tensor([1.5, 2.5], dtype=D64))


def test_usage_retention_and_allocation_known_answers():
    usage = torch.tensor([[0.5, 0.0, 0.2]], dtype=D64)
    prev_write = torch.tensor([[0.0, 1.0, 0.0]], dtype=D64)
    free = torch.tensor([[1.0]], dtype=D64)
    prev_read = torch.tensor([[[1.0, 0.0, 0.0]]], dtype=D64)  # slot 0 was read and is freed
    new = addr.update_usage(usage, prev_write, free, prev_read)
    torch.testing.assert_close(new, torch.tensor([[0.0, 1.0, 0.2]], dtype=D64))
    # Ascending order: slot 1 (0.1), slot 3 (0.3), slot 0 (0.5), slot 2 (0.9).
    alloc = addr.allocation_weighting(torch.tensor([[0.5, 0.1, 0.9, 0.3]], dtype=D64))
    expected = torch.tensor([[0.5 * 0.1 * 0.3, 0.9, 0.1 * 0.1 * 0.3 * 0.5, 0.7 * 0.1]], dtype=D64)
    torch.testing.assert_close(alloc, expected, atol=1e-5, rtol=0)
    assert int(alloc.argmax()) == 1
    # A fully used memory allocates (almost) nothing; a free slot takes everything.
    full = addr.allocation_weighting(torch.tensor([[1.0, 1.0, 0.0, 1.0]], dtype=D64))
    torch.testing.assert_close(full, torch.tensor([[0.0, 0.0, 1.0, 0.0]], dtype=D64), atol=1e-5, rtol=0)
    w = addr.write_weighting(alloc, torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=D64),
                             torch.tensor([0.5], dtype=D64), torch.tensor([1.0], dtype=D64))
    torch.testing.assert_close(w, 0.5 * alloc)


def test_link_matrix_after_writes_to_slots_0_2_1():
    N = 4
    link = torch.zeros(1, N, N, dtype=D64)
    precedence = torch.zeros(1, N, dtype=D64)
    for slot in (0, 2, 1):
        w = _onehot(N, slot).view(1, N)
        link = addr.update_link(link, precedence, w)
        precedence = addr.update_precedence(precedence, w)
    expected = torch.zeros(N, N, dtype=D64)
    expected[2, 0] = 1.0  # 2 was written right after 0
    expected[1, 2] = 1.0  # 1 was written right after 2
    torch.testing.assert_close(link[0], expected)
    assert torch.all(torch.diagonal(link[0]) == 0)
    torch.testing.assert_close(precedence[0], _onehot(N, 1))
    reads = torch.stack([_onehot(N, 0), _onehot(N, 2), _onehot(N, 1)]).unsqueeze(0)  # 3 read heads
    fwd, bwd = addr.directional_weightings(link, reads)
    torch.testing.assert_close(fwd[0], torch.stack([_onehot(N, 2), _onehot(N, 1), torch.zeros(N, dtype=D64)]))
    torch.testing.assert_close(bwd[0], torch.stack([torch.zeros(N, dtype=D64), _onehot(N, 0), _onehot(N, 2)]))
    # Read modes select backward / content / forward.
    content = _distribution(1, 3, N, seed=9)
    for mode, target in ((0, bwd), (1, content), (2, fwd)):
        modes = torch.zeros(1, 3, 3, dtype=D64)
        modes[..., mode] = 1.0
        torch.testing.assert_close(addr.dnc_read_weighting(bwd, content, fwd, modes), target)
    # Writing slot 0 again: links into and out of slot 0 are replaced (0 now follows 1).
    link = addr.update_link(link, precedence, _onehot(N, 0).view(1, N))
    expected[2, 0] = 0.0
    expected[0, 1] = 1.0
    torch.testing.assert_close(link[0], expected)
    # ...and once more in a row: no self-link (the diagonal stays zero), the link out of 0 is cleared.
    precedence = addr.update_precedence(precedence, _onehot(N, 0).view(1, N))
    link = addr.update_link(link, precedence, _onehot(N, 0).view(1, N))
    expected[0, 1] = 0.0
    torch.testing.assert_close(link[0], expected)


def test_gradients_are_finite_at_zero_memory_and_zero_keys():
    keys = torch.zeros(2, 2, 3, dtype=D64, requires_grad=True)
    strengths = torch.ones(2, 2, dtype=D64, requires_grad=True)
    memory = torch.zeros(2, 5, 3, dtype=D64, requires_grad=True)
    previous = torch.zeros(2, 2, 5, dtype=D64, requires_grad=True)  # also an all-zero previous weighting
    gates = torch.full((2, 2), 0.5, dtype=D64, requires_grad=True)
    shifts = torch.full((2, 2, 3), 1 / 3, dtype=D64, requires_grad=True)
    gammas = torch.full((2, 2), 2.0, dtype=D64, requires_grad=True)
    w = addr.ntm_address(keys, strengths, gates, shifts, gammas, previous, memory)
    torch.testing.assert_close(w, torch.full_like(w, 0.2), atol=1e-5, rtol=0)  # uniform
    zero_w = addr.sharpen(torch.zeros(2, 2, 5, dtype=D64, requires_grad=True), gammas)
    (w.pow(2).sum() + zero_w.sum() + addr.allocation_weighting(torch.zeros(2, 5, dtype=D64)).sum()).backward()
    for t in (keys, strengths, memory, previous, gates, shifts, gammas):
        assert t.grad is not None and torch.isfinite(t.grad).all()
