"""Checkpoint components: each stateful piece of an agent declared once, saved and restored by one walk.

A learner lists its components (:meth:`tracerl.algos.learner.Learner.components`): modules' state dicts,
optimizers, random generator streams, counters, extra tensors, JSON metadata. :func:`save_components` writes
every one into the checkpoint's tensors and metadata; :func:`restore_components` checks every one against the
live agent (shapes, dtypes, finiteness, bounds: the checks of :mod:`tracerl.io.restore_checks`) and only then
loads them all, so a checkpoint that does not fit leaves the agent unchanged. The entry names are the file
format's (``policy.*``, ``optim.<idx>.<key>``, ``net.<name>.*``, ``rng.acting``, ``meta.counters``, ...), so
files written before the walk existed load the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence

import torch
from torch import Tensor, nn

from ..errors import CheckpointError
from .checkpoint import check_tensor_shapes, load_module_state, upgrade_state_keys
from .restore_checks import (check_counters, check_finite, check_no_unexpected, check_rng_state, check_tensor_like,
                             entry_errors, load_optimizer, optimizer_state_from_checkpoint)
from .rng import capture_rng_state, restore_rng_state


class Component(Protocol):
    """One stateful piece of an agent in a checkpoint."""

    prefixes: tuple[str, ...]
    """The tensor names it owns start with one of these (used to refuse unexpected entries)."""

    def save(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        """Add its tensors and metadata."""
        ...

    def check(self, tensors: Mapping[str, Tensor], meta: Mapping[str, Any], where: str) -> Any:
        """Check the stored piece against the live one (CheckpointError naming the entry); copy nothing. Returns
        what :meth:`load` copies."""
        ...

    def load(self, staged: Any, where: str) -> None:
        """Copy the checked piece into the live agent."""
        ...


def optimizer_tensors(optimizer: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, Tensor], list[dict]]:
    """The one optimizer serializer: ``<prefix><param index>.<key>`` tensors of its per-parameter state and its
    param groups as JSON (tuples as lists)."""
    st = optimizer.state_dict()
    tensors: dict[str, Tensor] = {}
    for idx, pstate in st["state"].items():
        for key, value in pstate.items():
            tensors[f"{prefix}{idx}.{key}"] = value if isinstance(value, Tensor) else torch.tensor(value)
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in st["param_groups"]]
    return tensors, groups


def save_collector_state(collector: Any, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
    """Add a collector's carry (``collector.*`` tensors), its step count and episode stats (``meta["collector"]``)
    and, when its env has ``get_state()``, the env's state (``env.*`` tensors, ``meta["env_state"]``)."""
    import numpy as np

    tensors.update({f"collector.{k}": v for k, v in collector.carry_tensors().items()})
    meta["collector"] = {"total_steps": collector.total_steps, "stats": collector.stats.to_json()}
    get_state = getattr(collector.env, "get_state", None)
    if callable(get_state):
        arrays, env_json = get_state()
        tensors.update({f"env.{k}": torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()})
        meta["env_state"] = env_json


def _sub(tensors: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


@dataclass
class ModuleState:
    """A module's state dict under ``prefix`` (shapes, dtypes and finiteness checked before loading)."""

    prefix: str
    module: nn.Module

    @property
    def prefixes(self) -> tuple[str, ...]:
        return (self.prefix,)

    def save(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        tensors.update({f"{self.prefix}{k}": v for k, v in self.module.state_dict().items()})

    def check(self, tensors: Mapping[str, Tensor], meta: Mapping[str, Any], where: str) -> dict[str, Tensor]:
        sub = upgrade_state_keys(self.module, _sub(tensors, self.prefix))
        check_tensor_shapes(self.module.state_dict(), sub, where, self.prefix)
        check_finite(sub, where, self.prefix)
        return sub

    def load(self, staged: dict[str, Tensor], where: str) -> None:
        load_module_state(self.module, staged, where, self.prefix)


@dataclass
class OptimizerState:
    """An optimizer's state under ``prefix``; its param groups in the metadata at ``groups_at`` (a key path) or,
    when None, not stored (the live groups are the reference). ``lr_range``: the bounds of a stored learning rate
    (None: it must equal the live one)."""

    prefix: str
    optimizer: torch.optim.Optimizer
    groups_at: tuple[str, ...] | None = None
    lr_range: tuple[float, float] | None = None

    @property
    def prefixes(self) -> tuple[str, ...]:
        return (self.prefix,)

    @property
    def entry(self) -> str:
        return self.prefix.rstrip(".")

    def save(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        opt_tensors, groups = optimizer_tensors(self.optimizer, self.prefix)
        tensors.update(opt_tensors)
        if self.groups_at is not None:
            node = meta
            for key in self.groups_at[:-1]:
                node = node.setdefault(key, {})
            node[self.groups_at[-1]] = groups

    def check(self, tensors: Mapping[str, Tensor], meta: Mapping[str, Any], where: str) -> Any:
        if self.groups_at is None:
            groups: Any = self.optimizer.state_dict()["param_groups"]
            entry = self.entry
        else:
            groups = meta
            for key in self.groups_at:
                groups = groups.get(key) if isinstance(groups, Mapping) else None
            entry = "meta." + ".".join(self.groups_at)
        return optimizer_state_from_checkpoint(self.optimizer, tensors, self.prefix, groups, where, entry,
                                               self.lr_range)

    def load(self, staged: Any, where: str) -> None:
        load_optimizer(self.optimizer, staged, where, self.entry)


@dataclass
class GeneratorState:
    """A random generator's state as the tensor ``name`` (``uint8``, the live state's shape). ``optional``: absent
    in files written before the stream existed (then the live stream is kept)."""

    name: str
    get_state: Callable[[], Tensor]
    set_state: Callable[[Tensor], None]
    shape: Callable[[], Sequence[int]]
    optional: bool = False

    @property
    def prefixes(self) -> tuple[str, ...]:
        return (self.name,)

    def save(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        tensors[self.name] = self.get_state()

    def check(self, tensors: Mapping[str, Tensor], meta: Mapping[str, Any], where: str) -> Tensor | None:
        if self.optional and self.name not in tensors:
            return None
        return check_tensor_like(tensors.get(self.name), tuple(self.shape()), torch.uint8, where, self.name)

    def load(self, staged: Tensor | None, where: str) -> None:
        if staged is not None:
            self.set_state(staged)


@dataclass
class Counters:
    """Integer counters in ``meta.counters``: ``spec`` maps each to whether it is required; ``read`` gives the live
    values, ``write`` sets the checked ones."""

    spec: Mapping[str, bool]
    read: Callable[[], dict[str, int]]
    write: Callable[[dict[str, int]], None]
    prefixes: tuple[str, ...] = ()

    def save(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        meta["counters"] = self.read()

    def check(self, tensors: Mapping[str, Tensor], meta: Mapping[str, Any], where: str) -> dict[str, int]:
        return check_counters(meta.get("counters"), self.spec, where)

    def load(self, staged: dict[str, int], where: str) -> None:
        self.write(staged)


@dataclass
class TorchStream:
    """The agent's torch training stream (``rng/*`` tensors, ``meta.rng``) and the numpy generators ``np_rngs()``
    returns. ``restore=False``: saved here but restored by other code (the off-policy collector's generators exist
    only once an env is attached)."""

    torch_rng: Any
    np_rngs: Callable[[], list] = field(default=list)
    restore: bool = True

    @property
    def prefixes(self) -> tuple[str, ...]:
        return ("rng/",)

    def save(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        rng_tensors, rng_json = capture_rng_state(self.np_rngs(), torch_rng=self.torch_rng)
        tensors.update(rng_tensors)
        meta["rng"] = rng_json

    def check(self, tensors: Mapping[str, Tensor], meta: Mapping[str, Any], where: str) -> Any:
        if not self.restore:
            return None
        with entry_errors(where, "rng", "RNG state does not fit"):
            if not isinstance(meta.get("rng"), dict):
                raise CheckpointError("checkpoint metadata lacks the RNG state", path=where, entry="meta.rng")
            rng_tensors = {k: v for k, v in tensors.items() if k.startswith("rng/")}
            check_rng_state(rng_tensors, meta["rng"])
        return rng_tensors, meta["rng"]

    def load(self, staged: Any, where: str) -> None:
        if staged is None:
            return
        with entry_errors(where, "rng", "RNG state does not fit"):
            restore_rng_state(staged[0], staged[1], torch_rng=self.torch_rng)


@dataclass
class MetaEntry:
    """JSON metadata written on save (configs, spaces, ...); read back before the agent is built, so it has
    nothing to restore. ``skip_none``: not written when the value is None."""

    key: str
    value: Callable[[], Any]
    skip_none: bool = False
    prefixes: tuple[str, ...] = ()

    def save(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        value = self.value()
        if value is not None or not self.skip_none:
            meta[self.key] = value

    def check(self, tensors: Mapping[str, Tensor], meta: Mapping[str, Any], where: str) -> None:
        return None

    def load(self, staged: None, where: str) -> None:
        return None


@dataclass
class SaveOnly:
    """Tensors and metadata that ``save`` writes and other code restores once an env is attached (the collector's
    carry, env state, replay: :meth:`tracerl.algos.learner.Learner.restore_training`); ``prefixes`` are theirs."""

    write: Callable[[dict[str, Tensor], dict[str, Any]], None]
    prefixes: tuple[str, ...] = ()

    def save(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        self.write(tensors, meta)

    def check(self, tensors: Mapping[str, Tensor], meta: Mapping[str, Any], where: str) -> None:
        return None

    def load(self, staged: None, where: str) -> None:
        return None


@dataclass
class Walk:
    """The components of an agent, in the order they are checked (and then loaded)."""

    components: list[Any]

    def save(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        tensors: dict[str, Tensor] = {}
        meta: dict[str, Any] = {}
        for c in self.components:
            c.save(tensors, meta)
        return tensors, meta

    def restore(self, tensors: Mapping[str, Tensor], meta: Mapping[str, Any], where: str) -> None:
        """Refuse tensors no component owns, check every component, then load them all."""
        known = tuple(p for c in self.components for p in c.prefixes)
        check_no_unexpected(list(tensors), lambda n: n.startswith(known), where)
        staged = [c.check(tensors, meta, where) for c in self.components]
        for c, s in zip(self.components, staged):
            c.load(s, where)


__all__ = ["save_collector_state", "Component", "Counters", "GeneratorState", "MetaEntry", "ModuleState", "OptimizerState", "SaveOnly",
           "TorchStream", "Walk", "optimizer_tensors"]
