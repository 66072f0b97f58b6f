"""Supervised sequence benchmarks that train any memory core outside RL (e.g. the copy task)."""

from .copy_task import (
    BitErrors,
    CopyBatch,
    CopyModel,
    CopyResult,
    CopyTaskArgs,
    bit_error_rate,
    copy_input_dim,
    copy_loss,
    copytask_main,
    make_copy_batch,
    train_copy,
)

__all__ = [
    "BitErrors",
    "CopyBatch",
    "CopyModel",
    "CopyResult",
    "CopyTaskArgs",
    "bit_error_rate",
    "copy_input_dim",
    "copy_loss",
    "copytask_main",
    "make_copy_batch",
    "train_copy",
]
