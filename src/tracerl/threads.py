"""torch's intra-op thread count for the length of a block (training, evaluation, a benchmark)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)`` and restore the caller's count afterwards (also on error).

    ``None`` leaves the count as it is. One thread is the fastest for RL's small networks on CPU and never
    oversubscribes a shared machine (two threads on two cores stall on tiny ops)."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


__all__ = ["torch_threads"]
