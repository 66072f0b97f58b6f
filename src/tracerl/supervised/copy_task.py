"""The copy task (Graves, Wayne & Danihelka 2014, "Neural Turing Machines", §4.1) for any memory core.

A sequence of length ``L`` is ``L`` random ``bits``-wide binary vectors, one delimiter step, then ``L``
answer steps on which the model must reproduce the sequence, in order, from memory::

    t:        0 … L-1        L            L+1 … 2L        2L+1 … T-1
    input:    x_0 … x_{L-1}  delimiter    answer flag     zeros (padding)
    target:   —              —            x_0 … x_{L-1}   —
    mask:     0              0            1               0

Input layout (``bits + 2`` channels, :func:`copy_input_dim`):

- channels ``0 … bits-1``: the bit vectors during the presentation phase, zero afterwards;
- channel ``bits`` (:data:`DELIMITER_CHANNEL` offset): 1 on the delimiter step only (Graves' delimiter flag);
- channel ``bits + 1`` (:data:`ANSWER_CHANNEL` offset): 1 on each of the ``L`` answer steps. The answer
  inputs carry no data (the bit channels are zero, as in the paper); the flag only says "answer now",
  so padded steps (all zeros) are distinguishable from answer steps in a batch of mixed lengths.

Batches are time-major (``[T, B, ...]``); a batch of mixed lengths is padded at the end to
``T = 2 * max_len + 1`` with zero inputs, zero targets and mask 0. ``episode_start`` is True at
``t = 0`` only, so the core starts every sequence from its initial state.

Loss: binary cross-entropy with logits on the bit outputs, averaged over the bits of the answer steps
(masked mean ``sum(mask * bce) / (bits * sum(mask))``). Metric: the fraction of wrongly predicted
bits (logit > 0, i.e. probability > 0.5, read as 1) on the answer steps, and the mean number of
wrong bits per sequence (the "cost per sequence" figure of Graves et al., counted in bits).

No curriculum: every training batch draws each sequence's length uniformly from ``train_lengths``
(inclusive), as in the paper (lengths 1-20); generalization is measured on longer, unseen lengths.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..memory import MemoryCore, make_memory
from ..memory.base import Trace

DELIMITER_CHANNEL = 0
"""Offset after the ``bits`` data channels of the delimiter flag: channel ``bits + 0``."""
ANSWER_CHANNEL = 1
"""Offset after the ``bits`` data channels of the answer-phase flag: channel ``bits + 1``."""

Lengths = Union[int, tuple[int, int], Sequence[int]]
RNG = Union[np.random.Generator, torch.Generator]


def copy_input_dim(bits: int) -> int:
    """Input width of the copy task: ``bits`` data channels, the delimiter flag and the answer flag."""
    return bits + 2


@dataclass
class CopyBatch:
    """One time-major batch of copy sequences (``T = 2 * max(lengths) + 1``).

    ``inputs`` [T, B, bits + 2] float, ``targets`` [T, B, bits] float (0 outside the answer steps),
    ``mask`` [T, B] float (1 on the answer steps only), ``episode_start`` [T, B] bool (True at t = 0),
    ``lengths`` [B] long (each sequence's ``L``).
    """

    inputs: Tensor
    targets: Tensor
    mask: Tensor
    episode_start: Tensor
    lengths: Tensor

    @property
    def bits(self) -> int:
        """Width of one bit vector."""
        return int(self.targets.shape[-1])

    def to(self, device: torch.device | str) -> "CopyBatch":
        """The same batch on ``device``."""
        return CopyBatch(*(getattr(self, f.name).to(device) for f in dataclasses.fields(self)))


def _row_lengths(batch_size: int, lengths: Lengths, rng: RNG) -> Tensor:
    """Per-row lengths [B]: an int is every row's length, a tuple ``(lo, hi)`` an inclusive range sampled
    uniformly per row, any other sequence (list, array, tensor) the explicit length of each row."""
    if isinstance(lengths, (int, np.integer)):
        out = torch.full((batch_size,), int(lengths), dtype=torch.long)
    elif isinstance(lengths, tuple):
        if len(lengths) != 2:
            raise ValueError(f"lengths: a tuple is an inclusive range (lo, hi), got {lengths!r}")
        lo, hi = int(lengths[0]), int(lengths[1])
        if lo < 1 or hi < lo:
            raise ValueError(f"lengths: need 1 <= lo <= hi, got ({lo}, {hi})")
        if isinstance(rng, np.random.Generator):
            out = torch.as_tensor(rng.integers(lo, hi + 1, size=batch_size), dtype=torch.long)
        else:
            out = torch.randint(lo, hi + 1, (batch_size,), generator=rng)
    else:
        out = torch.as_tensor(np.asarray(lengths), dtype=torch.long).reshape(-1)
        if out.numel() != batch_size:
            raise ValueError(f"lengths: {out.numel()} per-row lengths for batch_size={batch_size}")
    if int(out.min()) < 1:
        raise ValueError(f"lengths must be >= 1, got {out.tolist()}")
    return out


def make_copy_batch(batch_size: int, lengths: Lengths, bits: int = 8, rng: RNG | None = None) -> CopyBatch:
    """A batch of ``batch_size`` copy sequences (layout in the module docstring).

    Args:
        batch_size: B, number of sequences.
        lengths: an int (every sequence has that length), a tuple ``(lo, hi)`` (lengths drawn uniformly
            from ``lo … hi`` inclusive), or a list/array of ``B`` explicit lengths.
        bits: width of each random binary vector.
        rng: ``np.random.Generator`` or ``torch.Generator`` (default: ``np.random.default_rng()``).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if bits < 1:
        raise ValueError(f"bits must be >= 1, got {bits}")
    rng = np.random.default_rng() if rng is None else rng
    L = _row_lengths(batch_size, lengths, rng)
    max_len = int(L.max())
    T = 2 * max_len + 1
    if isinstance(rng, np.random.Generator):
        seq = torch.as_tensor(rng.integers(0, 2, size=(max_len, batch_size, bits)), dtype=torch.float32)
    else:
        seq = torch.randint(0, 2, (max_len, batch_size, bits), generator=rng).float()
    t = torch.arange(T).unsqueeze(1)  # [T, 1]
    Lr = L.unsqueeze(0)  # [1, B]
    present = t < Lr
    delimiter = t == Lr
    answer = (t > Lr) & (t <= 2 * Lr)
    seq = seq * present[:max_len].unsqueeze(-1)  # zero the draws past each row's length
    inputs = torch.zeros(T, batch_size, bits + 2)
    inputs[:max_len, :, :bits] = seq
    inputs[..., bits + DELIMITER_CHANNEL] = delimiter.float()
    inputs[..., bits + ANSWER_CHANNEL] = answer.float()
    src = (t - Lr - 1).clamp(0, max_len - 1)  # answer step t reproduces x_{t - L - 1}
    targets = seq.gather(0, src.unsqueeze(-1).expand(T, batch_size, bits)) * answer.unsqueeze(-1)
    episode_start = torch.zeros(T, batch_size, dtype=torch.bool)
    episode_start[0] = True
    return CopyBatch(inputs, targets, answer.float(), episode_start, L)


class CopyModel(nn.Module):
    """Memory core -> Linear -> bit logits: ``logits[T, B, bits] = W y + b`` with
    ``y, _ = core(inputs, core.initial_state(B), episode_start)``.

    ``memory`` is a registered core name (built as ``make_memory(memory, input_dim=bits + 2,
    hidden_size=hidden_size, num_layers=num_layers, **memory_kwargs)``) or a ready
    :class:`~tracerl.memory.MemoryCore` whose ``input_dim`` is ``bits + 2``.
    """

    def __init__(
        self,
        memory: str | MemoryCore,
        bits: int = 8,
        hidden_size: int = 100,
        num_layers: int = 1,
        memory_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if bits < 1:
            raise ValueError(f"bits must be >= 1, got {bits}")
        self.bits = bits
        if isinstance(memory, MemoryCore):
            if memory_kwargs:
                raise ValueError("memory_kwargs: only used when memory is a name, got a built core")
            if memory.input_dim != copy_input_dim(bits):
                raise ValueError(
                    f"memory: core input_dim is {memory.input_dim}, the copy task with bits={bits} "
                    f"needs {copy_input_dim(bits)}"
                )
            self.core = memory
        else:
            self.core = make_memory(memory, input_dim=copy_input_dim(bits), hidden_size=hidden_size,
                                    num_layers=num_layers, **dict(memory_kwargs or {}))
        self.head = nn.Linear(self.core.output_dim, bits)

    def forward_with_trace(self, inputs: Tensor, episode_start: Tensor) -> tuple[Tensor, Trace]:
        """Logits [T, B, bits] and the core's trace (read/write weights etc.; empty for plain RNNs)."""
        state = self.core.initial_state(inputs.shape[1], inputs.device)
        y, _, trace = self.core.forward_with_trace(inputs, state, episode_start)
        return self.head(y), trace

    def forward(self, inputs: Tensor, episode_start: Tensor) -> Tensor:
        """Logits [T, B, bits] for ``inputs`` [T, B, bits + 2], every sequence from the initial state."""
        state = self.core.initial_state(inputs.shape[1], inputs.device)
        y, _ = self.core(inputs, state, episode_start)
        return self.head(y)


def copy_loss(logits: Tensor, batch: CopyBatch) -> Tensor:
    """Binary cross-entropy with logits averaged over the bits of the answer steps (nats per bit)."""
    bce = F.binary_cross_entropy_with_logits(logits, batch.targets, reduction="none").sum(-1)
    return (bce * batch.mask).sum() / (batch.mask.sum() * batch.bits)


@dataclass
class BitErrors:
    """Copy accuracy at one test length, over ``sequences`` sequences of exactly ``length`` steps."""

    length: int
    sequences: int
    bit_error_rate: float
    """Fraction of wrongly predicted bits on the answer steps (logit > 0 read as 1)."""
    wrong_bits_per_sequence: float
    """Mean number of wrong bits per sequence (out of ``length * bits``), as in Graves et al.'s figures."""
    perfect_sequences: float
    """Fraction of sequences copied without a single wrong bit."""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _device_of(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


@torch.no_grad()
def bit_error_rate(
    model: nn.Module,
    length: int,
    n_sequences: int = 256,
    seed: int = 10_000,
    bits: int | None = None,
    batch_size: int = 128,
) -> BitErrors:
    """Evaluate ``model`` (``model(inputs, episode_start) -> logits [T, B, bits]``) on ``n_sequences``
    fresh sequences of exactly ``length`` steps drawn from ``np.random.default_rng(seed)``.

    ``bits`` defaults to ``model.bits`` (8 when the model has no such attribute). Runs in eval mode
    without gradients, ``batch_size`` sequences at a time, and restores the model's training mode.
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    if n_sequences < 1:
        raise ValueError(f"n_sequences must be >= 1, got {n_sequences}")
    bits = int(getattr(model, "bits", 8)) if bits is None else bits
    rng = np.random.default_rng(seed)
    device = _device_of(model)
    was_training = model.training
    model.eval()
    wrong_total = 0.0
    perfect = 0
    done = 0
    try:
        while done < n_sequences:
            b = min(batch_size, n_sequences - done)
            batch = make_copy_batch(b, length, bits, rng).to(device)
            logits = model(batch.inputs, batch.episode_start)
            wrong = ((logits > 0).float() != batch.targets).float() * batch.mask.unsqueeze(-1)
            per_seq = wrong.sum(dim=(0, 2))  # [B]
            wrong_total += float(per_seq.sum())
            perfect += int((per_seq == 0).sum())
            done += b
    finally:
        model.train(was_training)
    return BitErrors(
        length=length,
        sequences=n_sequences,
        bit_error_rate=wrong_total / (n_sequences * length * bits),
        wrong_bits_per_sequence=wrong_total / n_sequences,
        perfect_sequences=perfect / n_sequences,
    )


@dataclass
class CopyResult:
    """What :func:`train_copy` returns: the trained model, its loss history and the test table."""

    model: CopyModel
    config: dict[str, Any]
    history: list[dict[str, Any]]
    """One entry per ``log_every`` steps: step, mean training loss (nats/bit) and training bit error
    rate over those steps, elapsed training seconds (test time excluded); on every ``test_every``-th
    step also ``test_bit_error`` ({length: bit error rate})."""
    evaluation: list[BitErrors]
    seconds: float
    parameters: int = field(default=0)

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "parameters": self.parameters,
            "seconds": self.seconds,
            "history": self.history,
            "evaluation": [e.to_json() for e in self.evaluation],
        }

    def table(self) -> str:
        """The evaluation as a text table (one row per test length)."""
        from tabulate import tabulate

        rows = [[e.length, e.sequences, f"{100 * e.bit_error_rate:.2f}", f"{e.wrong_bits_per_sequence:.2f}",
                 f"{100 * e.perfect_sequences:.1f}"] for e in self.evaluation]
        return tabulate(rows, headers=["length", "sequences", "bit error %", "wrong bits/seq", "perfect seq %"])


def train_copy(
    memory: str | MemoryCore,
    train_lengths: tuple[int, int] = (1, 20),
    steps: int = 5000,
    batch_size: int = 16,
    lr: float = 1e-3,
    optimizer: str = "adam",
    grad_clip: float = 10.0,
    seed: int = 0,
    bits: int = 8,
    hidden_size: int = 100,
    num_layers: int = 1,
    memory_kwargs: Mapping[str, Any] | None = None,
    eval_lengths: Sequence[int] = (10, 20, 40),
    eval_sequences: int = 256,
    eval_seed: int = 10_000,
    progress: bool = True,
    log_every: int = 100,
    device: str = "cpu",
    test_every: int = 0,
    test_sequences: int = 64,
    on_log: Optional[Callable[[dict[str, Any]], None]] = None,
    test_memory_kwargs: Mapping[str, Any] | None = None,
) -> CopyResult:
    """Train a :class:`CopyModel` on the copy task and evaluate it on ``eval_lengths``.

    Each step draws ``batch_size`` sequences with lengths uniform in ``train_lengths`` (inclusive, no
    curriculum), minimizes :func:`copy_loss` with Adam (or ``optimizer="rmsprop"``, momentum 0.9 as
    in Graves et al.), clipping the global gradient norm at ``grad_clip`` (0 disables clipping).
    Parameters are initialized from ``torch.manual_seed(seed)`` inside a forked RNG (the global torch
    RNG is left untouched); training data come from ``np.random.default_rng(seed)`` and the test
    sequences from ``eval_seed``, so train and test sequences are independent.

    ``test_every`` > 0 also measures the bit error at every ``eval_lengths`` length on
    ``test_sequences`` test sequences every ``test_every`` steps (a generalization learning curve,
    stored as ``test_bit_error`` in the history entry of that step; it draws from its own test RNG, so
    the training trajectory is the same with or without it). ``on_log`` is called with every history
    entry as it is recorded (e.g. to print progress from a script).

    ``test_memory_kwargs`` (with a named ``memory``) tests the trained parameters in a core built with
    ``{**memory_kwargs, **test_memory_kwargs}``, e.g. a larger ``memory_slots`` (the NTM's and DNC's
    parameters do not depend on the number of slots; a change that alters a parameter's shape raises).
    The final evaluation and the ``test_every`` curve then use that core; ``CopyResult.model`` stays the
    trained model.
    """
    lo, hi = (int(v) for v in train_lengths)
    if lo < 1 or hi < lo:
        raise ValueError(f"train_lengths: need 1 <= lo <= hi, got {train_lengths!r}")
    if test_every < 0:
        raise ValueError(f"test_every must be >= 0 (0 disables it), got {test_every}")
    for name, value in (("steps", steps), ("batch_size", batch_size), ("log_every", log_every),
                        ("eval_sequences", eval_sequences), ("test_sequences", test_sequences)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if test_memory_kwargs and not isinstance(memory, str):
        raise ValueError("test_memory_kwargs: only used when memory is a name, got a built core")
    if grad_clip < 0:
        raise ValueError(f"grad_clip must be >= 0 (0 disables clipping), got {grad_clip}")
    if optimizer not in ("adam", "rmsprop"):
        raise ValueError(f"optimizer must be 'adam' or 'rmsprop', got {optimizer!r}")
    for length in eval_lengths:
        if length < 1:
            raise ValueError(f"eval_lengths must be >= 1, got {list(eval_lengths)}")

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CopyModel(memory, bits=bits, hidden_size=hidden_size, num_layers=num_layers,
                          memory_kwargs=memory_kwargs).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=lr)
    else:
        opt = torch.optim.RMSprop(params, lr=lr, momentum=0.9)
    config = {"memory": memory if isinstance(memory, str) else type(memory).__name__,
              "memory_kwargs": dict(memory_kwargs or {}), "train_lengths": [lo, hi], "steps": steps,
              "batch_size": batch_size, "lr": lr, "optimizer": optimizer, "grad_clip": grad_clip, "seed": seed,
              "bits": bits, "hidden_size": hidden_size, "num_layers": num_layers,
              "eval_lengths": list(eval_lengths), "eval_sequences": eval_sequences, "eval_seed": eval_seed,
              "test_every": test_every, "test_sequences": test_sequences,
              "test_memory_kwargs": dict(test_memory_kwargs or {})}


    def test_model() -> nn.Module:
        """The model to test: the trained one, or its parameters in the core of ``test_memory_kwargs``."""
        if not test_memory_kwargs:
            return model
        with torch.random.fork_rng(devices=[]):  # its initialization is overwritten; keep the global RNG
            tester = CopyModel(str(memory), bits=bits, hidden_size=hidden_size, num_layers=num_layers,
                               memory_kwargs={**dict(memory_kwargs or {}), **dict(test_memory_kwargs)}).to(device)
        tester.load_state_dict(model.state_dict())
        return tester

    rng = np.random.default_rng(seed)
    history: list[dict[str, Any]] = []
    start = time.perf_counter()
    test_seconds = 0.0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, unit="batch", desc=f"copy {config['memory']}", dynamic_ncols=True)
    win_loss, win_wrong, win_bits, win_n = 0.0, 0.0, 0.0, 0
    model.train()
    try:
        for step in range(1, steps + 1):
            batch = make_copy_batch(batch_size, (lo, hi), bits, rng).to(device)
            logits = model(batch.inputs, batch.episode_start)
            loss = copy_loss(logits, batch)
            if not torch.isfinite(loss):
                from ..errors import NonFiniteError

                raise NonFiniteError(f"copy task: non-finite loss {float(loss.detach())} at step {step}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip > 0:
                nn.utils.clip_grad_norm_(params, grad_clip)
            opt.step()
            with torch.no_grad():
                wrong = ((logits > 0).float() != batch.targets).float() * batch.mask.unsqueeze(-1)
                win_wrong += float(wrong.sum())
                win_bits += float(batch.mask.sum()) * bits
            win_loss += float(loss.detach())
            win_n += 1
            testing = test_every > 0 and step % test_every == 0
            if step % log_every == 0 or step == steps or testing:
                entry: dict[str, Any] = {"step": step, "loss": win_loss / win_n,
                                         "bit_error_rate": win_wrong / win_bits,
                                         "seconds": time.perf_counter() - start - test_seconds}
                if testing:
                    t_test = time.perf_counter()
                    tester = test_model()
                    entry["test_bit_error"] = {
                        length: bit_error_rate(tester, length, test_sequences, seed=eval_seed + 1,
                                               bits=bits).bit_error_rate
                        for length in eval_lengths}
                    test_seconds += time.perf_counter() - t_test
                history.append(entry)
                win_loss, win_wrong, win_bits, win_n = 0.0, 0.0, 0.0, 0
                if bar is not None:
                    bar.set_postfix(loss=f"{entry['loss']:.4f}", bit_err=f"{100 * entry['bit_error_rate']:.2f}%")
                if on_log is not None:
                    on_log(entry)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    train_seconds = time.perf_counter() - start - test_seconds
    tester = test_model()
    evaluation = [bit_error_rate(tester, length, eval_sequences, seed=eval_seed, bits=bits)
                  for length in eval_lengths]
    return CopyResult(model=model, config=config, history=history, evaluation=evaluation, seconds=train_seconds,
                      parameters=sum(p.numel() for p in params))


# --------------------------------------------------------------------------------------------- CLI

COPY_MEMORY_KWARGS: dict[str, dict[str, Any]] = {
    "ntm": {"memory_slots": 128, "memory_width": 20},
    "dnc": {"memory_slots": 128, "memory_width": 20, "num_read_heads": 1},
}
"""The ``tracerl copytask`` memory defaults of the addressable cores, so that a length-80 sequence fits
in memory: Graves et al.'s 128 x 20 copy-task memory (the DNC with one read head). The cores' own
defaults (32 x 16 NTM, 16 x 16 DNC) are sized for RL and cannot hold 80 vectors."""


def parse_length_range(text: str, flag: str) -> tuple[int, int]:
    """``"1-20"`` -> ``(1, 20)``, ``"5"`` -> ``(5, 5)``. Raises ValueError naming ``flag``."""
    lo_text, sep, hi_text = text.strip().partition("-")
    try:
        lo = int(lo_text)
        hi = int(hi_text) if sep else lo
    except ValueError:
        raise ValueError(f"{flag}: expected a length range LO-HI such as 1-20, got {text!r}") from None
    if lo < 1 or hi < lo:
        raise ValueError(f"{flag}: need 1 <= LO <= HI, got {text!r}")
    return lo, hi


def parse_length_list(text: str, flag: str) -> tuple[int, ...]:
    """``"40,80"`` -> ``(40, 80)``. Raises ValueError naming ``flag``."""
    items = [item.strip() for item in text.split(",")]
    try:
        lengths = tuple(int(item) for item in items)
    except ValueError:
        raise ValueError(f"{flag}: expected comma-separated lengths such as 40,80, got {text!r}") from None
    if any(length < 1 for length in lengths):
        raise ValueError(f"{flag}: lengths must be >= 1, got {text!r}")
    return lengths


@dataclass
class CopyTaskArgs:
    """Train a memory core on the copy task (Graves et al. 2014) and report bit errors on longer sequences."""

    memory: str = "lstm"
    """Memory core name (see `tracerl list`), e.g. lstm, gru, ntm, dnc, mlp."""
    train_lengths: str = "1-20"
    """Training sequence lengths as LO-HI (inclusive, drawn uniformly per sequence)."""
    test_lengths: str = "10,20,40"
    """Comma-separated test sequence lengths, e.g. 40,80."""
    steps: int = 5000
    """Training steps (batches)."""
    batch_size: int = 16
    """Sequences per training batch."""
    lr: float = 1e-3
    """Learning rate."""
    optimizer: str = "adam"
    """adam or rmsprop (momentum 0.9, as in Graves et al.)."""
    grad_clip: float = 10.0
    """Global gradient-norm clip (0 disables it)."""
    bits: int = 8
    """Width of each random bit vector."""
    seed: int = 0
    """Random seed of the parameters and the training sequences."""
    hidden_size: int = 100
    """Output width of the memory core (hidden_size of make_memory)."""
    num_layers: int = 1
    """num_layers of the memory core."""
    memory_kwargs: tuple[str, ...] = ()
    """Memory core keyword arguments as KEY=VALUE (NTM and DNC default to a memory that holds 80 vectors,
    COPY_MEMORY_KWARGS; a KEY given here overrides it)."""
    eval_sequences: int = 256
    """Test sequences per test length."""
    eval_seed: int = 10_000
    """Seed of the test sequences (kept apart from training seeds)."""
    log_every: int = 100
    """Record the mean training loss every N steps."""
    test_every: int = 0
    """Every N steps also record the bit error at the test lengths on --test-sequences sequences (0: never)."""
    test_sequences: int = 64
    """Test sequences per length for --test-every."""
    test_memory_kwargs: tuple[str, ...] = ()
    """Test the trained parameters in a core built with these KEY=VALUE overrides of the memory
    keyword arguments, e.g. memory_slots=128 (NTM/DNC parameters do not depend on the slot count)."""
    out: Optional[str] = None
    """Write the results (config, history, bit errors) to this JSON file."""
    threads: int = 1
    """torch CPU threads (1 is fastest for small nets)."""
    device: str = "cpu"
    """torch device."""
    progress: bool = True
    """Show a progress bar with the training loss."""


def _print_test_entry(entry: Mapping[str, Any]) -> None:
    if "test_bit_error" in entry:
        errors = ", ".join(f"{length}: {100 * err:.2f}%" for length, err in entry["test_bit_error"].items())
        print(f"step {entry['step']}: loss {entry['loss']:.4f} nats/bit, test bit error {errors}", flush=True)


def copytask_main(argv: Sequence[str]) -> int:
    """``tracerl copytask``: parse ``argv``, train, print the bit-error table, optionally write JSON."""
    import tyro

    from ..keyvalue import parse_kwargs

    args = tyro.cli(CopyTaskArgs, args=list(argv), prog="tracerl copytask")
    train_lengths = parse_length_range(args.train_lengths, "--train-lengths")
    test_lengths = parse_length_list(args.test_lengths, "--test-lengths")
    memory_kwargs = {**COPY_MEMORY_KWARGS.get(args.memory, {}), **parse_kwargs(args.memory_kwargs, "--memory-kwargs")}
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    result = train_copy(args.memory, train_lengths=train_lengths, steps=args.steps, batch_size=args.batch_size,
                        lr=args.lr, optimizer=args.optimizer, grad_clip=args.grad_clip, seed=args.seed,
                        bits=args.bits, hidden_size=args.hidden_size, num_layers=args.num_layers,
                        memory_kwargs=memory_kwargs, eval_lengths=test_lengths,
                        eval_sequences=args.eval_sequences, eval_seed=args.eval_seed, progress=args.progress,
                        log_every=args.log_every, device=args.device, test_every=args.test_every,
                        test_sequences=args.test_sequences,
                        test_memory_kwargs=parse_kwargs(args.test_memory_kwargs, "--test-memory-kwargs"),
                        on_log=_print_test_entry if args.test_every and not args.progress else None)
    last = result.history[-1]
    print(f"copy task, memory={result.config['memory']}, {result.parameters} parameters, "
          f"{args.steps} steps in {result.seconds:.1f} s; final training loss {last['loss']:.4f} nats/bit, "
          f"training bit error {100 * last['bit_error_rate']:.2f}% (lengths {train_lengths[0]}-{train_lengths[1]})")
    print(result.table())
    if args.out is not None:
        out = Path(args.out)
        if out.parent != Path(""):
            out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result.to_json(), indent=2))
        print(f"wrote {out}")
    return 0


__all__ = [
    "ANSWER_CHANNEL",
    "DELIMITER_CHANNEL",
    "BitErrors",
    "COPY_MEMORY_KWARGS",
    "CopyBatch",
    "CopyModel",
    "CopyResult",
    "CopyTaskArgs",
    "bit_error_rate",
    "copy_input_dim",
    "copy_loss",
    "copytask_main",
    "make_copy_batch",
    "parse_length_list",
    "parse_length_range",
    "train_copy",
]
