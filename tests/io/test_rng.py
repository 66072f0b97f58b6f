"""RNG capture/restore: after a restore, torch, Python and numpy draw exactly the same numbers again."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from tracerl.io import TORCH_RNG_KEY, capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint


def _generators() -> list[np.random.Generator]:
    return [
        np.random.Generator(np.random.PCG64(1)),
        np.random.Generator(np.random.MT19937(2)),
        np.random.Generator(np.random.SFC64(3)),
        np.random.Generator(np.random.Philox(4)),
        np.random.Generator(np.random.PCG64DXSM(5)),
    ]


def _draw(rngs: list[np.random.Generator]) -> tuple:
    return (
        torch.rand(5).tolist(),
        torch.randint(0, 1000, (3,)).tolist(),
        [random.random() for _ in range(3)],
        random.gauss(0.0, 1.0),  # leaves a cached gauss_next behind, which must round-trip too
        [rng.random(4).tolist() for rng in rngs],
        [rng.integers(0, 2**62, 2).tolist() for rng in rngs],
    )


def _warm_up(rngs: list[np.random.Generator]) -> None:
    torch.manual_seed(11)
    random.seed(12)
    random.gauss(0.0, 1.0)  # gauss_next is now a float, not None
    for rng in rngs:
        rng.standard_normal(3)


def test_restore_replays_the_same_numbers() -> None:
    rngs = _generators()
    _warm_up(rngs)
    tensors, state = capture_rng_state(rngs)
    assert tensors[TORCH_RNG_KEY].dtype == torch.uint8
    first = _draw(rngs)
    restore_rng_state(tensors, state, rngs)
    assert _draw(rngs) == first


def test_state_survives_json_and_a_checkpoint(tmp_path: Path) -> None:
    rngs = _generators()
    _warm_up(rngs)
    tensors, state = capture_rng_state(rngs)
    pcg_state = state["numpy"][0]["state"]["state"]
    assert pcg_state > 2**64 or state["numpy"][0]["state"]["inc"] > 2**64  # 128-bit integers really occur

    path = tmp_path / "rng.safetensors"
    save_checkpoint(path, tensors, {"rng": state}, "tracerl.rng")
    first = _draw(rngs)
    _draw(rngs)  # move further on, as a training run would

    loaded_tensors, meta = load_checkpoint(path, kind="tracerl.rng")
    assert json.loads(json.dumps(meta["rng"])) == meta["rng"]
    restore_rng_state(loaded_tensors, meta["rng"], rngs)
    assert _draw(rngs) == first


def test_restore_into_fresh_generators() -> None:
    rngs = _generators()
    _warm_up(rngs)
    tensors, state = capture_rng_state(rngs)
    first = _draw(rngs)
    fresh = [np.random.Generator(type(r.bit_generator)(999)) for r in rngs]
    torch.manual_seed(0)
    random.seed(0)
    restore_rng_state(tensors, json.loads(json.dumps(state)), fresh)
    assert _draw(fresh) == first


def test_mismatched_generators_raise_and_change_nothing() -> None:
    rngs = _generators()[:2]
    _warm_up(rngs)
    tensors, state = capture_rng_state(rngs)
    torch.manual_seed(5)
    random.seed(5)
    expected_torch = torch.get_rng_state()
    expected_py = random.getstate()

    with pytest.raises(ValueError, match="2 numpy generator"):
        restore_rng_state(tensors, state, rngs[:1])
    swapped = [rngs[1], rngs[0]]
    twins = [copy.deepcopy(r) for r in swapped]
    with pytest.raises(ValueError, match="numpy generator 0"):
        restore_rng_state(tensors, state, swapped)
    with pytest.raises(ValueError, match=TORCH_RNG_KEY):
        restore_rng_state({}, state, rngs)

    assert torch.equal(torch.get_rng_state(), expected_torch)
    assert random.getstate() == expected_py
    for rng, twin in zip(swapped, twins):
        assert rng.random(3).tolist() == twin.random(3).tolist()


def test_agent_rng_streams_are_private_and_nested_blocks_continue_the_stream():
    from tracerl.io.rng import AgentRNG

    flat, nested = AgentRNG(5), AgentRNG(5)
    outer = torch.get_rng_state()
    with flat.active():
        a = torch.rand(3)
        b = torch.rand(3)
    with nested.active():
        c = torch.rand(3)
        with nested.active():  # e.g. learn() calling train_step(): no restart of the stream
            d = torch.rand(3)
    assert torch.equal(a, c) and torch.equal(b, d)
    assert torch.equal(torch.get_rng_state(), outer)
    with flat.active():
        e = torch.rand(3)
    assert not torch.equal(e, a)  # the stream went on from where the first block left it
    with pytest.raises(RuntimeError, match="inside active"), flat.active():
        flat.set_state(flat.state)


def test_a_capture_inside_the_agents_block_saves_the_live_stream():
    """A checkpoint written mid-learn (inside ``active``) must save where the stream is, not where it entered."""
    from tracerl.io.rng import AgentRNG

    rng = AgentRNG(2)
    with rng.active():
        torch.rand(5)
        tensors, _ = capture_rng_state(torch_rng=rng)
        expected = torch.rand(3)
    resumed = AgentRNG(0)
    resumed.set_state(tensors[TORCH_RNG_KEY])
    with resumed.active():
        assert torch.equal(torch.rand(3), expected)
