"""The copy task benchmark (tracerl.supervised.copy_task)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from tracerl.memory import make_memory
from tracerl.supervised.copy_task import (
    CopyModel,
    bit_error_rate,
    copy_input_dim,
    copy_loss,
    copytask_main,
    make_copy_batch,
    parse_length_list,
    parse_length_range,
    train_copy,
)


def test_batch_layout_known_answer():
    bits = 4
    batch = make_copy_batch(3, [3, 1, 2], bits=bits, rng=np.random.default_rng(0))
    T = 2 * 3 + 1
    assert batch.inputs.shape == (T, 3, bits + 2) == (T, 3, copy_input_dim(bits))
    assert batch.targets.shape == (T, 3, bits)
    assert batch.mask.shape == (T, 3) and batch.episode_start.shape == (T, 3)
    assert batch.episode_start.dtype == torch.bool
    assert batch.episode_start[0].all() and not batch.episode_start[1:].any()
    assert batch.lengths.tolist() == [3, 1, 2]
    for b, L in enumerate([3, 1, 2]):
        x = batch.inputs[:, b]
        delim = torch.zeros(T)
        delim[L] = 1
        answer = torch.zeros(T)
        answer[L + 1 : 2 * L + 1] = 1
        assert torch.equal(x[:, bits], delim), f"row {b}: delimiter only at t={L}"
        assert torch.equal(x[:, bits + 1], answer), f"row {b}: answer flag on t={L + 1}..{2 * L}"
        assert torch.equal(batch.mask[:, b], answer), f"row {b}: mask on the answer steps only"
        # The bits are presented on t < L and nowhere else; the answer steps carry no data.
        assert torch.equal(x[L:, :bits], torch.zeros(T - L, bits))
        assert set(x[:L, :bits].unique().tolist()) <= {0.0, 1.0}
        # Targets on answer step L + 1 + i equal the input bits of step i; zero elsewhere.
        assert torch.equal(batch.targets[L + 1 : 2 * L + 1, b], x[:L, :bits])
        assert torch.equal(batch.targets[: L + 1, b], torch.zeros(L + 1, bits))
        # Padding (t > 2L): all-zero inputs and targets, masked out.
        assert torch.equal(x[2 * L + 1 :], torch.zeros(T - 2 * L - 1, bits + 2))
        assert torch.equal(batch.targets[2 * L + 1 :, b], torch.zeros(T - 2 * L - 1, bits))
    # Same rng seed -> same batch; the bits are random (not all equal) over a larger batch.
    again = make_copy_batch(3, [3, 1, 2], bits=bits, rng=np.random.default_rng(0))
    assert torch.equal(again.inputs, batch.inputs)
    big = make_copy_batch(64, 10, bits=bits, rng=np.random.default_rng(1))
    assert 0.4 < float(big.targets.sum() / (big.mask.sum() * bits)) < 0.6


def test_length_range_and_torch_generator():
    batch = make_copy_batch(200, (2, 5), bits=3, rng=torch.Generator().manual_seed(0))
    assert set(batch.lengths.tolist()) == {2, 3, 4, 5}
    max_len = int(batch.lengths.max())
    assert batch.inputs.shape == (2 * max_len + 1, 200, 5)
    assert torch.equal(batch.mask.sum(0), batch.lengths.float())
    fixed = make_copy_batch(4, 6, bits=3, rng=torch.Generator().manual_seed(0))
    assert fixed.lengths.tolist() == [6] * 4 and fixed.inputs.shape[0] == 13
    with pytest.raises(ValueError, match="lengths"):
        make_copy_batch(2, (5, 2))
    with pytest.raises(ValueError, match="lengths"):
        make_copy_batch(2, [1, 2, 3])


class OracleCopier(nn.Module):
    """Reads the delimiter position of each row and replays the presented bits as ±20 logits."""

    def __init__(self, bits: int) -> None:
        super().__init__()
        self.bits = bits

    def forward(self, inputs: Tensor, episode_start: Tensor) -> Tensor:
        T, B, _ = inputs.shape
        lengths = inputs[..., self.bits].argmax(0)  # [B], the delimiter step is t = L
        t = torch.arange(T).unsqueeze(1)
        src = (t - lengths - 1).clamp(0, T - 1)
        replay = inputs[..., : self.bits].gather(0, src.unsqueeze(-1).expand(T, B, self.bits))
        return 40.0 * replay - 20.0


class ConstantModel(nn.Module):
    def __init__(self, bits: int) -> None:
        super().__init__()
        self.bits = bits
        self.bias = nn.Parameter(torch.full((bits,), 0.3))

    def forward(self, inputs: Tensor, episode_start: Tensor) -> Tensor:
        return self.bias.expand(*inputs.shape[:2], self.bits)


def test_bit_error_rate_of_oracle_is_zero_and_of_constant_is_half():
    oracle = OracleCopier(bits=8)
    res = bit_error_rate(oracle, length=7, n_sequences=300, seed=3, batch_size=64)
    assert res.bit_error_rate == 0.0 and res.wrong_bits_per_sequence == 0.0 and res.perfect_sequences == 1.0
    assert res.length == 7 and res.sequences == 300
    batch = make_copy_batch(16, (1, 5), 8, np.random.default_rng(0))
    assert float(copy_loss(oracle(batch.inputs, batch.episode_start), batch)) < 1e-6
    const = bit_error_rate(ConstantModel(bits=8), length=10, n_sequences=400, seed=3)
    assert 0.47 < const.bit_error_rate < 0.53
    assert const.wrong_bits_per_sequence == pytest.approx(const.bit_error_rate * 10 * 8)
    # A model that is right on all bits but one per sequence: exactly 1 wrong bit per sequence.

    class OneWrong(OracleCopier):
        def forward(self, inputs: Tensor, episode_start: Tensor) -> Tensor:
            logits = super().forward(inputs, episode_start).clone()
            L = int(inputs[..., self.bits].argmax(0)[0])
            logits[L + 1, :, 0] = -logits[L + 1, :, 0]
            return logits

    one = bit_error_rate(OneWrong(bits=8), length=5, n_sequences=50, seed=0)
    assert one.wrong_bits_per_sequence == 1.0 and one.bit_error_rate == pytest.approx(1 / 40)
    assert one.perfect_sequences == 0.0


def test_copy_model_shapes_and_core_validation():
    model = CopyModel("gru", bits=5, hidden_size=12)
    batch = make_copy_batch(3, (1, 4), 5, np.random.default_rng(0))
    logits = model(batch.inputs, batch.episode_start)
    assert logits.shape == batch.targets.shape
    logits2, trace = model.forward_with_trace(batch.inputs, batch.episode_start)
    assert torch.equal(logits, logits2) and trace == {}
    core = make_memory("lstm", input_dim=copy_input_dim(5), hidden_size=7)
    assert CopyModel(core, bits=5).head.in_features == 7
    with pytest.raises(ValueError, match="input_dim"):
        CopyModel(make_memory("lstm", input_dim=4, hidden_size=7), bits=5)


def test_lstm_learns_short_copies_and_mlp_cannot():
    kw = dict(train_lengths=(1, 3), steps=1000, batch_size=32, lr=1e-2, hidden_size=64, seed=0,
              eval_lengths=(1, 3), eval_sequences=512, progress=False, log_every=250)
    lstm = train_copy("lstm", **kw)
    mlp = train_copy("mlp", **kw)
    lstm_err = {e.length: e.bit_error_rate for e in lstm.evaluation}
    mlp_err = {e.length: e.bit_error_rate for e in mlp.evaluation}
    assert lstm_err[3] < 0.05 and lstm_err[1] < 0.05, lstm_err
    assert mlp_err[3] > 0.4 and mlp_err[1] > 0.4, mlp_err
    assert lstm.history[-1]["loss"] < lstm.history[0]["loss"]
    assert [h["step"] for h in lstm.history] == [250, 500, 750, 1000]


def test_training_is_reproducible_from_the_seed():
    kw = dict(train_lengths=(1, 2), steps=20, batch_size=4, hidden_size=8, eval_lengths=(2,), eval_sequences=16,
              progress=False, log_every=10)
    a, b = train_copy("gru", seed=5, **kw), train_copy("gru", seed=5, **kw)
    c = train_copy("gru", seed=6, **kw)
    assert a.history[-1]["loss"] == b.history[-1]["loss"]
    assert a.history[-1]["loss"] != c.history[-1]["loss"]


def test_copytask_main_end_to_end(tmp_path, capsys):
    out = tmp_path / "res" / "copy.json"
    code = copytask_main(["--memory", "lstm", "--train-lengths", "1-3", "--test-lengths", "4,6", "--steps", "30",
                          "--batch-size", "4", "--hidden-size", "16", "--bits", "4", "--eval-sequences", "20",
                          "--log-every", "10", "--memory-kwargs", "chrono_tmax=None", "--no-progress",
                          "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "bit error %" in printed and "wrong bits/seq" in printed
    data = json.loads(out.read_text())
    assert data["config"]["memory"] == "lstm" and data["config"]["train_lengths"] == [1, 3]
    assert data["config"]["memory_kwargs"] == {"chrono_tmax": None} and data["config"]["bits"] == 4
    assert [e["length"] for e in data["evaluation"]] == [4, 6]
    assert all(0.0 <= e["bit_error_rate"] <= 1.0 for e in data["evaluation"])
    assert [h["step"] for h in data["history"]] == [10, 20, 30]


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--train-lengths", "5-2"], "--train-lengths"),
        (["--train-lengths", "0-3"], "--train-lengths"),
        (["--train-lengths", "x"], "--train-lengths"),
        (["--test-lengths", "a"], "--test-lengths"),
        (["--test-lengths", "4,0"], "--test-lengths"),
        (["--memory-kwargs", "nonsense"], "--memory-kwargs"),
    ],
)
def test_bad_flags_raise_errors_naming_the_flag(argv, flag):
    with pytest.raises(ValueError, match=flag):
        copytask_main([*argv, "--steps", "1", "--no-progress"])


def test_length_parsers():
    assert parse_length_range("1-20", "--f") == (1, 20)
    assert parse_length_range(" 7 ", "--f") == (7, 7)
    assert parse_length_list("40,80", "--f") == (40, 80)
    assert parse_length_list("5", "--f") == (5,)


def test_test_every_records_a_generalization_curve_without_changing_training():
    kw = dict(train_lengths=(1, 2), steps=6, batch_size=4, hidden_size=8, eval_lengths=(2, 4), eval_sequences=8,
              progress=False, log_every=4, seed=3)
    plain = train_copy("gru", **kw)
    seen = []
    tested = train_copy("gru", test_every=3, test_sequences=8, on_log=seen.append, **kw)
    assert [h["step"] for h in tested.history] == [3, 4, 6]
    assert [h["step"] for h in seen] == [3, 4, 6]
    assert "test_bit_error" in tested.history[0] and "test_bit_error" not in tested.history[1]
    assert set(tested.history[2]["test_bit_error"]) == {2, 4}
    assert all(0.0 <= e <= 1.0 for e in tested.history[2]["test_bit_error"].values())
    # Testing draws from its own RNG and runs without gradients: the trained model is the same.
    for p, q in zip(plain.model.parameters(), tested.model.parameters()):
        assert torch.equal(p, q)
    assert [e.bit_error_rate for e in plain.evaluation] == [e.bit_error_rate for e in tested.evaluation]
    with pytest.raises(ValueError, match="test_every"):
        train_copy("gru", test_every=-1, **kw)


def test_cli_gives_ntm_and_dnc_a_memory_that_holds_length_80(tmp_path):
    from tracerl.supervised.copy_task import COPY_MEMORY_KWARGS

    for name in ("ntm", "dnc"):
        assert COPY_MEMORY_KWARGS[name]["memory_slots"] > 80  # an 80-step copy writes 80 vectors
    out = tmp_path / "ntm.json"
    code = copytask_main(["--memory", "ntm", "--train-lengths", "1-2", "--test-lengths", "2", "--steps", "1",
                          "--batch-size", "2", "--hidden-size", "8", "--bits", "2", "--eval-sequences", "2",
                          "--memory-kwargs", "memory_width=4", "--no-progress", "--out", str(out)])
    assert code == 0
    config = json.loads(out.read_text())["config"]
    assert config["memory_kwargs"] == {"memory_slots": 128, "memory_width": 4}


def test_test_memory_kwargs_tests_the_trained_parameters_in_a_larger_memory():
    kw = dict(train_lengths=(1, 3), steps=3, batch_size=2, hidden_size=8, bits=3, eval_lengths=(3,),
              eval_sequences=4, progress=False, seed=1, memory_kwargs={"memory_slots": 4, "memory_width": 4})
    small = train_copy("dnc", **kw)
    large = train_copy("dnc", test_memory_kwargs={"memory_slots": 12}, **kw)
    assert large.config["test_memory_kwargs"] == {"memory_slots": 12}
    # Training is the same; only the tested core differs, and it is the trained one with 12 slots.
    for p, q in zip(small.model.parameters(), large.model.parameters()):
        assert torch.equal(p, q)
    assert large.model.core.memory_slots == 4
    tester = CopyModel("dnc", bits=3, hidden_size=8, memory_kwargs={"memory_slots": 12, "memory_width": 4})
    tester.load_state_dict(large.model.state_dict())
    assert large.evaluation[0] == bit_error_rate(tester, 3, 4, seed=10_000)
    with pytest.raises(RuntimeError, match="size mismatch"):  # a different width changes parameter shapes
        train_copy("dnc", test_memory_kwargs={"memory_width": 6}, **kw)
    with pytest.raises(ValueError, match="test_memory_kwargs"):
        train_copy(make_memory("gru", input_dim=copy_input_dim(3), hidden_size=8), steps=1, bits=3,
                   eval_lengths=(2,), progress=False, test_memory_kwargs={"memory_slots": 12})
