"""The Differentiable Neural Dictionary: kNN lookups, kernel weights and write rules against hand-computed
answers, LRU eviction order, gradients into the neighbours' keys and values, and its checkpoint contents."""

from __future__ import annotations

import pytest
import torch

from tracerl.algos.dnd import DND, DNDState
from tracerl.errors import CheckpointError, ConfigError


def _filled(**kw) -> DND:
    """One action, keys (0,0) (1,0) (0,2) with values 1, 2, 3."""
    dnd = DND(1, 8, 2, **kw)
    dnd.write(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]]), torch.zeros(3), torch.tensor([1.0, 2.0, 3.0]))
    return dnd


def test_inverse_kernel_lookup_of_the_two_nearest_keys_matches_the_hand_computed_answer():
    # distances^2 from (0,0): 0, 1 (4 is the third); w = 1/(0+1), 1/(1+1) -> 2/3, 1/3; Q = 2/3*1 + 1/3*2
    dnd = _filled(num_neighbours=2, delta=1.0)
    q = dnd.q_values(torch.tensor([[0.0, 0.0]]))
    assert q.shape == (1, 1)
    assert q.item() == pytest.approx(4.0 / 3.0, abs=1e-6)


def test_inverse_kernel_over_all_keys_weights_them_by_one_over_distance_plus_delta():
    # query (0,1): distances^2 1, 2, 1 -> w = 1/1.5, 1/2.5, 1/1.5 with delta 0.5
    dnd = _filled(num_neighbours=3, delta=0.5)
    w = torch.tensor([1 / 1.5, 1 / 2.5, 1 / 1.5])
    expected = (w * torch.tensor([1.0, 2.0, 3.0])).sum() / w.sum()
    assert dnd.q_values(torch.tensor([[0.0, 1.0]])).item() == pytest.approx(expected.item(), abs=1e-6)


def test_a_lookup_uses_every_entry_while_fewer_than_p_are_stored_and_an_empty_dictionary_answers_zero():
    dnd = DND(2, 8, 2, num_neighbours=50, delta=1.0)
    dnd.write(torch.tensor([[0.0, 0.0], [2.0, 0.0]]), torch.tensor([1, 1]), torch.tensor([1.0, 4.0]))
    q = dnd.q_values(torch.tensor([[1.0, 0.0]]))  # both at distance^2 1: equal weights
    assert q[0, 0].item() == 0.0
    assert q[0, 1].item() == pytest.approx(2.5)


def test_batched_lookup_equals_a_brute_force_reference_per_query():
    gen = torch.Generator().manual_seed(0)
    dnd = DND(3, 200, 5, num_neighbours=7, delta=1e-3)
    keys = torch.randn(300, 5, generator=gen)
    actions = torch.randint(0, 3, (300,), generator=gen)
    dnd.write(keys, actions, torch.randn(300, generator=gen))
    queries = torch.randn(40, 5, generator=gen)
    q = dnd.q_values(queries)
    for a in range(3):
        n = int(dnd.size[a])
        k, v = dnd.keys[a, :n], dnd.values[a, :n]
        for m in range(40):
            d2 = ((k - queries[m]) ** 2).sum(-1)
            idx = d2.argsort()[:7]
            w = 1.0 / (d2[idx] + 1e-3)
            assert q[m, a].item() == pytest.approx(((w * v[idx]).sum() / w.sum()).item(), abs=1e-5)


def test_writing_an_existing_key_moves_its_value_by_alpha_and_a_new_key_is_appended():
    dnd = _filled(alpha=0.5)
    dnd.write(torch.tensor([[1.0, 0.0]]), torch.zeros(1), torch.tensor([4.0]))
    assert int(dnd.size[0]) == 3
    assert dnd.values[0, 1].item() == pytest.approx(3.0)  # 2 + 0.5 (4 - 2)
    dnd.write(torch.tensor([[5.0, 5.0]]), torch.zeros(1), torch.tensor([7.0]))
    assert int(dnd.size[0]) == 4
    assert dnd.keys[0, 3].tolist() == [5.0, 5.0] and dnd.values[0, 3].item() == 7.0


def test_the_exact_match_threshold_decides_between_update_and_append():
    near = torch.tensor([[1.1, 0.0]])  # distance^2 0.01 from (1, 0)
    loose = _filled(alpha=1.0, match_threshold=0.02)
    loose.write(near, torch.zeros(1), torch.tensor([9.0]))
    assert int(loose.size[0]) == 3 and loose.values[0, 1].item() == pytest.approx(9.0)
    strict = _filled(alpha=1.0, match_threshold=0.005)
    strict.write(near, torch.zeros(1), torch.tensor([9.0]))
    assert int(strict.size[0]) == 4 and strict.values[0, 1].item() == pytest.approx(2.0)


def test_the_max_rule_keeps_the_highest_return_written_to_a_key():
    dnd = DND(1, 4, 2, write_rule="max", kernel="mean")
    key = torch.tensor([[1.0, 1.0]])
    for ret, expected in ((1.0, 1.0), (0.5, 1.0), (2.0, 2.0), (-3.0, 2.0)):
        dnd.write(key, torch.zeros(1), torch.tensor([ret]))
        assert dnd.values[0, 0].item() == expected
    assert int(dnd.size[0]) == 1


def test_the_mean_kernel_answers_an_exact_match_with_its_value_and_otherwise_the_mean_of_k_nearest():
    dnd = _filled(num_neighbours=2, kernel="mean", write_rule="max")
    assert dnd.q_values(torch.tensor([[1.0, 0.0]])).item() == pytest.approx(2.0)  # exact: its own value
    assert dnd.q_values(torch.tensor([[0.4, 0.0]])).item() == pytest.approx(1.5)  # mean of (0,0) and (1,0)


def test_a_full_dictionary_evicts_the_least_recently_used_entry_and_lookups_count_as_use():
    dnd = DND(1, 3, 1, num_neighbours=1)
    for x in (0.0, 10.0, 20.0):  # ticks 0, 1, 2
        dnd.write(torch.tensor([[x]]), torch.zeros(1), torch.tensor([x]))
    dnd.q_values(torch.tensor([[0.1]]), refresh=True)  # uses key 0 at tick 3
    dnd.q_values(torch.tensor([[0.2]]))  # not an acting lookup: no use
    dnd.write(torch.tensor([[30.0]]), torch.zeros(1), torch.tensor([30.0]))  # evicts 10 (tick 1)
    assert sorted(dnd.keys[0, :, 0].tolist()) == [0.0, 20.0, 30.0]
    dnd.write(torch.tensor([[40.0]]), torch.zeros(1), torch.tensor([40.0]))  # evicts 20 (tick 2)
    assert sorted(dnd.keys[0, :, 0].tolist()) == [0.0, 30.0, 40.0]
    dnd.write(torch.tensor([[0.0]]), torch.zeros(1), torch.tensor([5.0]))  # an update refreshes key 0
    dnd.write(torch.tensor([[50.0]]), torch.zeros(1), torch.tensor([50.0]))  # evicts 30
    assert sorted(dnd.keys[0, :, 0].tolist()) == [0.0, 40.0, 50.0]
    assert int(dnd.size[0]) == 3


def test_gradients_reach_the_query_and_the_neighbours_keys_and_values_as_a_dense_reference_computes():
    gen = torch.Generator().manual_seed(1)
    dnd = DND(2, 16, 3, num_neighbours=4, delta=0.1)
    dnd.write(torch.randn(20, 3, generator=gen), torch.randint(0, 2, (20,), generator=gen),
              torch.randn(20, generator=gen))
    h = torch.randn(5, 3, generator=gen, requires_grad=True)
    target = torch.randn(5, 2, generator=gen)
    q, handles = dnd.q_values_grad(h)
    ((q - target) ** 2).sum().backward()
    # dense reference: every stored key and value a leaf, the same neighbours chosen by distance
    ref_h = h.detach().clone().requires_grad_(True)
    keys = dnd.keys.clone().requires_grad_(True)
    values = dnd.values.clone().requires_grad_(True)
    cols = []
    for a in range(2):
        n = int(dnd.size[a])
        d2 = ((ref_h.unsqueeze(1) - keys[a, :n].unsqueeze(0)) ** 2).sum(-1)
        idx = d2.detach().argsort(-1)[:, :4]
        w = 1.0 / (d2.gather(1, idx) + 0.1)
        cols.append((w * values[a, :n][idx]).sum(-1) / w.sum(-1))
    ((torch.stack(cols, -1) - target) ** 2).sum().backward()
    assert torch.allclose(h.grad, ref_h.grad, atol=1e-5)
    before_k, before_v = dnd.keys.clone(), dnd.values.clone()
    dnd.apply_gradients(handles, lr=0.5)
    assert torch.allclose(dnd.keys, before_k - 0.5 * keys.grad, atol=1e-5)
    assert torch.allclose(dnd.values, before_v - 0.5 * values.grad, atol=1e-5)


def test_save_and_load_of_a_full_dictionary_round_trips_every_tensor():
    gen = torch.Generator().manual_seed(2)
    dnd = DND(2, 5, 3, num_neighbours=2)
    dnd.write(torch.randn(30, 3, generator=gen), torch.randint(0, 2, (30,), generator=gen),
              torch.randn(30, generator=gen))
    dnd.q_values(torch.randn(4, 3, generator=gen), refresh=True)
    assert dnd.size.tolist() == [5, 5]
    tensors: dict = {}
    DNDState("dnd.", dnd).save(tensors, {})
    other = DND(2, 5, 3, num_neighbours=2)
    component = DNDState("dnd.", other)
    component.load(component.check(tensors, {}, "x.tracerl"), "x.tracerl")
    for name, t in dnd.state_tensors().items():
        assert torch.equal(t, other.state_tensors()[name]), name
    q = torch.randn(6, 3, generator=gen)
    assert torch.equal(dnd.q_values(q), other.q_values(q))


@pytest.mark.faults("DND contents in a checkpoint out of range (size > capacity, NaN key, tick after the clock, "
                    "wrong shape) | CheckpointError naming the entry; live DND unchanged | none")
@pytest.mark.parametrize("entry,edit", [
    ("dnd.size", lambda t: t["dnd.size"].fill_(6)),
    ("dnd.keys", lambda t: t["dnd.keys"].view(-1)[0].fill_(float("nan"))),
    ("dnd.last_used", lambda t: t["dnd.last_used"].fill_(10**6)),
    ("dnd.values", lambda t: t.__setitem__("dnd.values", torch.zeros(2, 4))),
    ("dnd.clock", lambda t: t.pop("dnd.clock")),
])
def test_a_corrupted_dictionary_is_refused_naming_the_entry(entry, edit):
    dnd = _filled()
    tensors: dict = {}
    DNDState("dnd.", DND(2, 5, 3)).save(tensors, {})
    edit(tensors)
    live = DND(2, 5, 3)
    with pytest.raises(CheckpointError, match=entry.replace(".", r"\.")):
        DNDState("dnd.", live).check(tensors, {}, "x.tracerl")
    assert int(live.size.sum()) == 0 and int(dnd.size.sum()) == 3


@pytest.mark.faults("DND built with a bad size, kernel or rule | ConfigError naming the argument | none")
@pytest.mark.parametrize("kw,name", [({"capacity": 0}, "capacity"), ({"delta": 0.0}, "delta"),
                                     ({"kernel": "gauss"}, "kernel"), ({"write_rule": "sum"}, "write_rule")])
def test_bad_dnd_arguments_raise_config_error_naming_them(kw, name):
    args = {"n_actions": 2, "capacity": 4, "key_dim": 3, **kw}
    with pytest.raises(ConfigError, match=name):
        DND(**args)


def _reference_write(keys, values, last_used, size, new_keys, actions, returns, now, alpha, threshold, capacity):
    """One write call done the plain way: each write in order scans its action's whole dictionary."""
    for key, a, ret in zip(new_keys, actions.tolist(), returns):
        n = int(size[a])
        if n > 0:
            d2 = ((keys[a, :n] - key) ** 2).sum(-1)
            j = int(d2.argmin())
            if float(d2[j]) <= threshold:
                values[a, j] += alpha * (ret - values[a, j])
                last_used[a, j] = now
                continue
        j = n if n < capacity else int(last_used[a].argmin())
        if n < capacity:
            size[a] = n + 1
        keys[a, j], values[a, j], last_used[a, j] = key, ret, now


@pytest.mark.parametrize("capacity", [6, 40])
def test_a_batch_of_writes_equals_the_writes_done_one_by_one_in_order(capacity):
    """Repeated keys inside one call (matches) and a small capacity (evictions inside one call)."""
    gen = torch.Generator().manual_seed(3)
    dnd = DND(2, capacity, 3, alpha=0.5, match_threshold=1e-6)
    ref = {k: v.clone() for k, v in dnd.state_tensors().items()}
    pool = torch.randn(10, 3, generator=gen)
    for call in range(8):
        idx = torch.randint(0, 10, (9,), generator=gen)
        new_keys, actions, returns = pool[idx], torch.randint(0, 2, (9,), generator=gen), torch.randn(9, generator=gen)
        _reference_write(ref["keys"], ref["values"], ref["last_used"], ref["size"], new_keys, actions, returns, call,
                         0.5, 1e-6, capacity)
        dnd.write(new_keys, actions, returns)
        for name in ("keys", "values", "last_used", "size"):
            assert torch.allclose(dnd.state_tensors()[name].float(), ref[name].float(), atol=1e-6), (call, name)
    assert int(dnd.size.min()) == min(capacity, 10)
