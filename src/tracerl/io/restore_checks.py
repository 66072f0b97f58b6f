"""Checks that make everything read from a checkpoint untrusted input: one :class:`CheckpointError` boundary.

A checkpoint's hashes live in the file they protect, so anyone who edits a file can make it "valid". Loading
therefore (1) bounds every size the metadata asks for before anything is built (:class:`LoadLimits`, and the
networks are first built on torch's ``meta`` device, where they allocate nothing, and compared with the stored
tensors' shapes), and (2) checks every restored piece against the live objects and the config: optimizer groups
and moments, carried collector state, counters, episode statistics, RNG streams. Any other exception raised by a
malformed entry is turned into a :class:`CheckpointError` naming the file and the entry (:func:`entry_errors`).
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode

from ..errors import CheckpointError, TraceRLError
from .rng import check_rng_state

__all__ = [
    "LIMITS",
    "LoadLimits",
    "attach_env",
    "building_on_meta",
    "check_action_values",
    "check_config_types",
    "check_counters",
    "check_env_round_trip",
    "check_env_state",
    "check_finite",
    "check_network_budget",
    "check_rng_state",
    "check_sizes",
    "check_episode_stats",
    "check_int",
    "check_no_unexpected",
    "check_space_json",
    "check_tensor_like",
    "check_tensors_like",
    "entry_errors",
    "load_optimizer",
    "meta_copy",
    "meta_state_bytes",
    "module_numel",
    "optimizer_state_from_checkpoint",
]


@dataclass(frozen=True)
class LoadLimits:
    """Largest sizes a checkpoint may ask for on load (checked before anything is allocated).

    Replace :data:`LIMITS` (``tracerl.io.restore_checks.LIMITS = LoadLimits(...)``) to load larger agents.
    """

    max_n_envs: int = 4096
    """Sub-envs (``n_envs``) a loaded agent may build."""
    max_width: int = 65_536
    """Any layer width in the metadata (``hidden_size``, encoder and head widths, RND embedding, aux classes)."""
    max_layers: int = 64
    """``num_layers`` of a memory and the number of encoder or head layers."""
    max_space_elements: int = 10_000_000
    """Elements of one observation or action (product of a Box or MultiBinary shape, entries of a MultiDiscrete)."""
    max_discrete: int = 10_000_000
    """``n`` of a Discrete space (and each MultiDiscrete entry): one-hot widths and Q-heads grow with it."""
    max_parameters: int = 2_000_000_000
    """Elements of all networks' parameters and buffers together (persistent or not)."""
    max_state_bytes: int = 4 * 1024**3
    """Bytes of the recurrent state of all ``n_envs`` envs (the collector's carry, what predict keeps)."""
    max_rollout_steps: int = 50_000_000
    """``n_steps * n_envs`` of an on-policy rollout."""
    max_replay_bytes: int = 32 * 1024**3
    """Estimated bytes of an off-policy replay built from ``buffer_size`` (when the file does not hold it)."""
    max_int_option: int = 100_000_000
    """Any other integer size option (``memory_kwargs`` entries, ``batch_size``, ``seq_len``, ...)."""


LIMITS = LoadLimits()
"""The limits :meth:`tracerl.TraceRL.load` applies."""

_CONVERTED = (KeyError, ValueError, TypeError, RuntimeError, IndexError, AttributeError, OverflowError,
              AssertionError, ZeroDivisionError, NotImplementedError, TraceRLError)


@contextlib.contextmanager
def entry_errors(where: str, entry: str | None, what: str = "malformed checkpoint entry") -> Iterator[None]:
    """Turn any error a malformed entry raises inside the block into a :class:`CheckpointError` naming ``where``
    (the file) and ``entry``. A CheckpointError raised inside passes through unchanged."""
    try:
        yield
    except CheckpointError:
        raise
    except _CONVERTED as exc:
        raise CheckpointError(f"{what}: {type(exc).__name__}: {exc}", path=where, entry=entry) from exc


def _device_constructors() -> set[Any]:
    from torch.utils._device import _device_constructors as constructors

    return set(constructors())


_MOVES = {torch.Tensor.to, torch.Tensor.cpu, torch.Tensor.cuda}


class _MetaMode(TorchFunctionMode):
    """Every tensor made inside lives on the ``meta`` device, whatever device the code asks for; moves of meta
    tensors keep them there (dtype changes apply); ``item()`` of a meta tensor is 0. Shapes come out exactly as
    for a real build; values are meaningless (a probe, never used to act)."""

    def __init__(self) -> None:
        super().__init__()
        self.constructors = _device_constructors()

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = dict(kwargs or {})
        if func in self.constructors:
            kwargs["device"] = "meta"
            kwargs.pop("pin_memory", None)
            return func(*args, **kwargs)
        if func in _MOVES and args and isinstance(args[0], Tensor) and args[0].is_meta:
            dtype = None
            if func is torch.Tensor.to:
                rest = [a for a in args[1:] if not isinstance(a, (str, torch.device, int)) or isinstance(a, bool)]
                dtype = kwargs.get("dtype")
                for a in rest:
                    if isinstance(a, torch.dtype):
                        dtype = a
                    elif isinstance(a, Tensor):
                        dtype = a.dtype
            return args[0] if dtype is None or dtype == args[0].dtype else args[0].to(dtype=dtype)
        if func is torch.Tensor.item and args and isinstance(args[0], Tensor) and args[0].is_meta:
            return False if args[0].dtype == torch.bool else 0.0 if args[0].is_floating_point() else 0
        return func(*args, **kwargs)


@contextlib.contextmanager
def building_on_meta() -> Iterator[None]:
    """Build modules on torch's ``meta`` device: shapes only, no memory, whatever device the code names (see
    :class:`_MetaMode`). For probes that are compared with a checkpoint's tensors and then thrown away."""
    with _MetaMode():
        yield


def _fail(message: str, where: str, entry: str | None) -> CheckpointError:
    return CheckpointError(message, path=where, entry=entry)


# ------------------------------------------------------------------------------------------------- scalars


def check_int(value: Any, where: str, entry: str, low: int | None = 0, high: int | None = None) -> int:
    """``value`` must be a JSON integer (not a bool or float) in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(f"must be an integer, got {type(value).__name__} {value!r}", where, entry)
    if low is not None and value < low:
        raise _fail(f"must be >= {low}, got {value}", where, entry)
    if high is not None and value > high:
        raise _fail(f"{value} is larger than the limit {high} (tracerl.io.restore_checks.LIMITS)", where, entry)
    return value


def check_float(value: Any, where: str, entry: str, low: float | None = None) -> float:
    """``value`` must be a finite JSON number (not a bool), at least ``low`` when given."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(f"must be a finite number, got {value!r}", where, entry)
    if low is not None and value < low:
        raise _fail(f"must be >= {low}, got {value}", where, entry)
    return float(value)


def check_counters(counters: Any, spec: Mapping[str, bool], where: str, entry: str = "meta.counters") -> dict[str, int]:
    """Non-negative integer counters; ``spec`` maps each name to whether it is required (absent optional ones are
    left out of the result, the caller keeps its default)."""
    if not isinstance(counters, Mapping):
        raise _fail(f"must be a JSON object, got {type(counters).__name__}", where, entry)
    out = {}
    for name, required in spec.items():
        if name not in counters:
            if required:
                raise _fail(f"lacks {name!r}", where, entry)
            continue
        out[name] = check_int(counters[name], where, f"{entry}.{name}", 0, 2**62)
    return out


def check_episode_stats(stats: Any, n_envs: int, where: str, entry: str) -> None:
    """The JSON of :meth:`tracerl.data.rollout.EpisodeStats.to_json` for ``n_envs`` envs."""
    if not isinstance(stats, Mapping):
        raise _fail(f"must be a JSON object, got {type(stats).__name__}", where, entry)
    for key in ("returns", "lengths", "successes", "running_return", "running_length", "episodes"):
        if key not in stats:
            raise _fail(f"lacks {key!r}", where, entry)
    for key, integer in (("returns", False), ("lengths", True), ("successes", False), ("running_return", False),
                         ("running_length", True)):
        values = stats[key]
        if not isinstance(values, list):
            raise _fail(f"must be a list, got {type(values).__name__}", where, f"{entry}.{key}")
        for i, v in enumerate(values):
            if integer:
                check_int(v, where, f"{entry}.{key}[{i}]", 0)
            else:
                check_float(v, where, f"{entry}.{key}[{i}]")
        if key.startswith("running_") and len(values) != n_envs:
            raise _fail(f"has {len(values)} entries for {n_envs} envs", where, f"{entry}.{key}")
    check_int(stats["episodes"], where, f"{entry}.episodes", 0)


# -------------------------------------------------------------------------------------------------- sizes


def _space_elements(shape: Any, where: str, entry: str) -> int:
    if not isinstance(shape, list) or len(shape) > 32:
        raise _fail(f"shape must be a list of at most 32 sizes, got {shape!r}", where, entry)
    total = 1
    for i, d in enumerate(shape):
        total *= check_int(d, where, f"{entry}[{i}]", 0, LIMITS.max_space_elements)
    if total > LIMITS.max_space_elements:
        raise _fail(f"{total} elements, more than the limit {LIMITS.max_space_elements}", where, entry)
    return total


_BOX_DTYPES = ("float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool")


def check_space_json(d: Any, where: str, entry: str, depth: int = 0) -> None:
    """Bound the sizes of a space description (:func:`tracerl.io.spaces.space_to_json`) before it is built."""
    if not isinstance(d, Mapping):
        raise _fail(f"must be a JSON object, got {type(d).__name__}", where, entry)
    if depth > 8:
        raise _fail("spaces nested deeper than 8 levels", where, entry)
    kind = d.get("type")
    if kind == "Box":
        n = _space_elements(d.get("shape"), where, f"{entry}.shape")
        for key in ("low", "high"):
            values = d.get(key)
            if not isinstance(values, list) or len(values) != n or not all(
                    (isinstance(v, (int, float)) and not isinstance(v, bool)) or v in ("inf", "-inf") for v in values):
                raise _fail(f"{key} must be a list of {n} numbers", where, f"{entry}.{key}")
        if d.get("dtype") not in _BOX_DTYPES:
            raise _fail(f"dtype {d.get('dtype')!r} is not one of {', '.join(_BOX_DTYPES)}", where, f"{entry}.dtype")
    elif kind == "Discrete":
        check_int(d.get("n"), where, f"{entry}.n", 1, LIMITS.max_discrete)
        check_int(d.get("start", 0), where, f"{entry}.start", -(2**62), 2**62)
    elif kind == "MultiDiscrete":
        nvec = d.get("nvec")
        flat = np.asarray(nvec, dtype=object).ravel().tolist() if isinstance(nvec, list) else None
        if flat is None or len(flat) > LIMITS.max_space_elements:
            raise _fail("nvec must be a list within the size limit", where, f"{entry}.nvec")
        for i, v in enumerate(flat):
            check_int(v, where, f"{entry}.nvec[{i}]", 1, LIMITS.max_discrete)
    elif kind == "MultiBinary":
        n = d.get("n")
        _space_elements(n if isinstance(n, list) else [n], where, f"{entry}.n")
    elif kind in ("Tuple", "Dict"):
        subs = d.get("spaces")
        if not isinstance(subs, list) or len(subs) > 1024:
            raise _fail("spaces must be a list of at most 1024 spaces", where, f"{entry}.spaces")
        for i, s in enumerate(subs):
            check_space_json(s, where, f"{entry}.spaces[{i}]", depth + 1)
    else:
        raise _fail(f"unknown space type {kind!r}", where, f"{entry}.type")


_WIDTH_FIELDS = ("hidden_size", "rnd_emb_dim", "n_classes", "hidden", "feat_dim", "count_hash_bits")
_WIDTH_LISTS = ("encoder_hidden", "head_hidden")


def check_sizes(section: Any, where: str, entry: str) -> None:
    """Bound every integer of a config section (and of its nested ``memory_kwargs``) read from a checkpoint:
    widths by ``max_width``, ``num_layers`` by ``max_layers``, ``n_envs`` by ``max_n_envs``, anything else by
    ``max_int_option``. Types are the configs' own business (they raise ConfigError, converted by the caller)."""
    if not isinstance(section, Mapping):
        raise _fail(f"must be a JSON object, got {type(section).__name__}", where, entry)
    for key, value in section.items():
        name = f"{entry}.{key}"
        if isinstance(value, Mapping):
            check_sizes(value, where, name)
        elif isinstance(value, list):
            if key in _WIDTH_LISTS and len(value) > LIMITS.max_layers:
                raise _fail(f"{len(value)} layers, more than the limit {LIMITS.max_layers}", where, name)
            for i, item in enumerate(value):
                if isinstance(item, int) and not isinstance(item, bool):
                    high = LIMITS.max_width if key in _WIDTH_LISTS else LIMITS.max_int_option
                    check_int(item, where, f"{name}[{i}]", None, high)
                elif isinstance(item, Mapping):
                    check_sizes(item, where, f"{name}[{i}]")
        elif isinstance(value, int) and not isinstance(value, bool):
            if key == "count_hash_bits":
                high = 32
            elif key in _WIDTH_FIELDS:
                high = LIMITS.max_width
            elif key == "num_layers":
                high = LIMITS.max_layers
            elif key == "n_envs":
                high = LIMITS.max_n_envs
            else:
                high = LIMITS.max_int_option
            check_int(value, where, name, None, high)


def _matches(value: Any, hint: Any) -> bool:
    """Whether a JSON ``value`` is of the dataclass field type ``hint`` (bools are not ints, ints not bools, floats
    not NaN)."""
    import types
    import typing

    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin is typing.Union or (hasattr(types, "UnionType") and isinstance(hint, types.UnionType)):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if origin is typing.Literal:
        return any(type(value) is type(arg) and value == arg for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:  # NaN is never a setting; an infinity may be one (the config's validation decides)
        return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)
    if hint is str:
        return isinstance(value, str)
    if origin in (tuple, list):
        args = typing.get_args(hint)
        if not isinstance(value, list):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(args) == len(value) and all(_matches(v, a) for v, a in zip(value, args)) if args else True
    if origin is dict or hint is dict:
        return isinstance(value, dict) and all(isinstance(k, str) for k in value)
    return True  # a type this check does not know: the config's own validation decides


def check_config_types(cls: type, section: Any, where: str, entry: str) -> None:
    """Every key of a config section read from a checkpoint is a field of the dataclass ``cls`` and its JSON value
    has the field's type (no coercion: ``"16"`` is not 16, ``16.0`` is not an int, NaN is refused)."""
    import dataclasses
    import typing

    if not isinstance(section, Mapping):
        raise _fail(f"must be a JSON object, got {type(section).__name__}", where, entry)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key, value in section.items():
        if key not in names:
            raise _fail(f"unknown {cls.__name__} field {key!r}", where, f"{entry}.{key}")
        if not _matches(value, hints.get(key, Any)):
            raise _fail(f"{value!r} is not of the field's type {hints.get(key)}", where, f"{entry}.{key}")


def module_numel(modules: Sequence[torch.nn.Module]) -> int:
    """Elements of every parameter and buffer (persistent or not) of ``modules``, counted once each."""
    seen: set[int] = set()
    total = 0
    for module in modules:
        for t in [*module.parameters(), *module.buffers()]:
            if id(t) not in seen:
                seen.add(id(t))
                total += t.numel()
    return total


def meta_state_bytes(state: Mapping[str, Tensor]) -> int:
    """Bytes of a state dict of (meta) tensors."""
    return sum(t.numel() * t.element_size() for t in state.values())


def check_network_budget(modules: Sequence[torch.nn.Module], state: Mapping[str, Tensor], where: str) -> None:
    """The meta-built networks' total size and the recurrent state of all envs stay under :data:`LIMITS`."""
    numel = module_numel(modules)
    if numel > LIMITS.max_parameters:
        raise _fail(f"the networks described would hold {numel} parameters and buffers, more than the limit "
                    f"{LIMITS.max_parameters}", where, "meta.policy")
    state_bytes = meta_state_bytes(state)
    if state_bytes > LIMITS.max_state_bytes:
        raise _fail(f"the recurrent state of all envs would take {state_bytes} bytes, more than the limit "
                    f"{LIMITS.max_state_bytes}", where, "meta.policy.memory_kwargs")


def meta_copy(module: torch.nn.Module) -> torch.nn.Module:
    """A copy of a live module on the meta device (for building a probe around a user's memory core)."""
    return copy.deepcopy(module).to("meta")


# ------------------------------------------------------------------------------------------------ tensors


def check_tensor_like(got: Any, want_shape: Sequence[int], want_dtype: torch.dtype, where: str, entry: str,
                      finite: bool = False, low: float | None = None, high: float | None = None) -> Tensor:
    """A stored tensor must have exactly ``want_shape`` and ``want_dtype``; optionally finite values in
    ``[low, high]``."""
    if not isinstance(got, Tensor):
        raise _fail("entry missing from the checkpoint", where, entry)
    if tuple(got.shape) != tuple(want_shape) or got.dtype != want_dtype:
        raise _fail(f"checkpoint has {list(got.shape)} {got.dtype}, expected {list(want_shape)} {want_dtype}",
                    where, entry)
    if got.numel() and (finite or low is not None or high is not None) and got.dtype != torch.bool:
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise _fail("holds non-finite values", where, entry)
        if low is not None and bool((got < low).any()):
            raise _fail(f"holds values below {low}", where, entry)
        if high is not None and bool((got > high).any()):
            raise _fail(f"holds values above {high}", where, entry)
    return got


def check_tensors_like(loaded: Mapping[str, Tensor], expected: Mapping[str, Tensor], where: str, prefix: str,
                       finite: bool = True) -> None:
    """``loaded`` has exactly ``expected``'s names, each with its shape and dtype (and finite float values)."""
    for name, want in expected.items():
        check_tensor_like(loaded.get(name), want.shape, want.dtype, where, prefix + name, finite=finite)
    for name in loaded:
        if name not in expected:
            raise _fail("unexpected entry in the checkpoint", where, prefix + name)


def check_no_unexpected(names: Sequence[str], known: Callable[[str], bool], where: str) -> None:
    """Every stored tensor must belong to a piece the loader restores."""
    for name in sorted(names):
        if not known(name):
            raise _fail("unexpected entry in the checkpoint (no part of this agent stores it)", where, name)


def check_finite(tensors: Mapping[str, Tensor], where: str, prefix: str) -> None:
    """Floating tensors (weights, statistics) must be finite; a module's packed extra state is left to it."""
    for name, t in tensors.items():
        if name.endswith("_extra_state") or not t.is_floating_point() or t.numel() == 0:
            continue
        if not bool(torch.isfinite(t).all()):
            raise _fail("holds non-finite values", where, prefix + name)


def check_action_values(space: Any, actions: Tensor, where: str, entry: str) -> None:
    """Stored actions (policy-side: Discrete as indices from 0, MultiDiscrete per entry from 0, Box finite) must be
    valid actions of ``space``; an index out of range would fail later inside a one-hot or a gather."""
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        check_tensor_like(actions, actions.shape, actions.dtype, where, entry, low=0, high=int(space.n) - 1)
    elif isinstance(space, spaces.MultiDiscrete):
        if actions.numel() and actions.shape[-1:] == tuple(space.nvec.shape[-1:]):
            top = torch.as_tensor(space.nvec.reshape(-1), dtype=actions.dtype) - 1
            if bool((actions < 0).any()) or bool((actions > top).any()):
                raise _fail("holds actions outside the action space", where, entry)
    elif isinstance(space, spaces.MultiBinary):
        check_tensor_like(actions, actions.shape, actions.dtype, where, entry, low=0, high=1)
    elif actions.is_floating_point():
        check_tensor_like(actions, actions.shape, actions.dtype, where, entry, finite=True)


def check_env_state(env: Any, arrays: Mapping[str, Tensor], state: Any, where: str) -> None:
    """Stored env arrays must have the names, shapes and dtypes the live env's own ``get_state`` gives, and the
    JSON part must be an object (the env's ``set_state`` checks its configuration)."""
    if not isinstance(state, Mapping):
        raise _fail(f"must be a JSON object, got {type(state).__name__}", where, "meta.env_state")
    get_state = getattr(env, "get_state", None)
    if not callable(get_state):
        return
    with entry_errors(where, "env", "cannot read the live env's state to compare"):
        live_arrays, live_json = get_state()
    expected = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in live_arrays.items()}
    check_tensors_like(arrays, expected, where, "env.", finite=True)
    from ..envs.batched import BatchedEnv

    if isinstance(env, BatchedEnv):  # tracerl's own envs: their integer state (steps, positions, cues) is >= 0
        for name, t in arrays.items():
            if not t.is_floating_point() and t.dtype != torch.bool and t.numel() and bool((t < 0).any()):
                raise _fail("holds negative values where the env keeps counts and positions", where, f"env.{name}")
    if isinstance(live_json, Mapping):
        if sorted(state) != sorted(live_json):
            raise _fail(f"env state keys {sorted(state)} differ from this env's {sorted(live_json)}", where,
                        "meta.env_state")
        for key, value in live_json.items():
            if isinstance(value, list) and (not isinstance(state[key], list) or len(state[key]) != len(value)):
                raise _fail(f"must be a list of {len(value)} entries", where, f"meta.env_state.{key}")
        if "was_reset" in live_json and state["was_reset"] is not True:
            raise _fail("the env was never reset, yet the collector carries its observations", where,
                        "meta.env_state.was_reset")


def attach_env(agent: Any, env: Any, where: str) -> Any:
    """``agent._make_env(env)`` for a loaded agent: when ``env`` is the checkpoint's own env id, the checkpoint's
    ``env_kwargs`` build it, so a failure is the file's (a CheckpointError naming ``meta.env_kwargs``); another env
    gets no stored kwargs and a mismatch is the caller's (ConfigError from ``_make_env``); the env's spaces must
    equal the checkpoint's."""
    if isinstance(env, str) and env == getattr(agent, "env_id", None):  # built with the file's env_kwargs
        from ..envs.safe_make import check_env_id

        check_env_id(env, getattr(agent, "import_modules", ()))  # a refused module is the user's choice: ConfigError
        with entry_errors(where, "meta.env_kwargs", f"cannot build {env!r} with the checkpoint's env_kwargs"):
            vec = agent._make_env(env)
    else:
        vec = agent._make_env(env)
    for what, got, want in (("observation_space", vec.single_observation_space, agent.observation_space),
                            ("action_space", vec.single_action_space, agent.action_space)):
        if got != want:
            raise _fail(f"the env's {what} {got} differs from the checkpoint's {want}", where, f"meta.{what}")
    return vec


def check_env_round_trip(env: Any, arrays: Mapping[str, Tensor], state: Mapping[str, Any], where: str) -> None:
    """After ``set_state``, the env's ``get_state`` must give back exactly what was stored: an env that coerced or
    ignored part of a malformed state is refused."""
    import json

    with entry_errors(where, "env", "cannot read the restored env's state"):
        got_arrays, got_json = env.get_state()
    for name, value in got_arrays.items():
        stored = arrays.get(name)
        if stored is None or not np.array_equal(np.asarray(value), stored.numpy()):
            raise _fail("the env did not take the stored array as it is", where, f"env.{name}")
    if json.dumps(got_json, sort_keys=True, default=str) != json.dumps(state, sort_keys=True, default=str):
        raise _fail("the env did not take the stored state as it is (malformed values)", where, "meta.env_state")


# ---------------------------------------------------------------------------------------------- optimizers

_ADAM_KEYS = ("step", "exp_avg", "exp_avg_sq")


_KERNEL_OPTIONS = ("foreach", "fused")
"""Adam options that choose how the step is computed (one update up to float rounding), not what it computes: a
checkpoint's values are checked for type and replaced by the live optimizer's (``PPOConfig.adam_impl``)."""


def optimizer_state_from_checkpoint(
    optimizer: torch.optim.Optimizer,
    tensors: Mapping[str, Tensor],
    prefix: str,
    groups_json: Any,
    where: str,
    groups_entry: str,
    lr_range: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """The ``state_dict`` to load into the live ``optimizer``, from the tensors named ``{prefix}{index}.{key}`` and
    the JSON param groups, after checking them against the live optimizer.

    Groups: as many as the live optimizer's, each with the live group's keys only (a missing key keeps the live
    value), the same ``params`` indices and the same value for every option except ``lr`` (so ``maximize``,
    ``betas``, ``eps``, ``weight_decay``, ... are the config's; ``foreach`` / ``fused`` only choose the kernel, and the
    live optimizer's are kept whatever the file says); ``lr`` must equal the live group's (a constant
    learning rate is the config's), or, with ``lr_range``, be finite and inside that closed range (a decaying
    schedule ends at 0). State (Adam): per parameter index in
    range, either nothing or exactly ``step`` (a finite scalar >= 0), ``exp_avg`` and ``exp_avg_sq`` (and
    ``max_exp_avg_sq`` with amsgrad) shaped and typed like the parameter, finite, second moments >= 0.
    """
    if not isinstance(optimizer, torch.optim.Adam):
        raise TypeError(f"optimizer_state_from_checkpoint knows Adam, not {type(optimizer).__name__}")
    live = optimizer.state_dict()
    live_groups = live["param_groups"]
    if not isinstance(groups_json, list) or len(groups_json) != len(live_groups):
        n = len(groups_json) if isinstance(groups_json, list) else type(groups_json).__name__
        raise _fail(f"expected {len(live_groups)} optimizer param group(s), the checkpoint has {n}", where,
                    groups_entry)
    groups = []
    for gi, (g, lg) in enumerate(zip(groups_json, live_groups)):
        entry = f"{groups_entry}[{gi}]"
        if not isinstance(g, Mapping):
            raise _fail(f"must be a JSON object, got {type(g).__name__}", where, entry)
        unknown = sorted(set(g) - set(lg))
        if unknown:
            raise _fail(f"unknown optimizer option(s) {', '.join(map(repr, unknown))}", where, entry)
        new = dict(lg)
        for key, value in g.items():
            if key == "params":
                if value != lg["params"] or not all(type(i) is int for i in value):
                    raise _fail(f"params {value!r} differ from the live optimizer's {lg['params']!r}", where,
                                f"{entry}.params")
            elif key == "lr":
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise _fail(f"lr must be a finite number, got {value!r}", where, f"{entry}.lr")
                low, high = lr_range if lr_range is not None else (lg["lr"], lg["lr"])
                if not (low <= value <= high and (value > 0 or lr_range is not None)):
                    rule = f"in [{low}, {high}]" if low != high else f"the config's learning rate {low!r}"
                    raise _fail(f"lr={value!r} must be {rule}", where, f"{entry}.lr")
                new[key] = float(value)
            elif key in _KERNEL_OPTIONS:  # which kernel runs the step, not the algorithm: the live config's choice
                if value is not None and not isinstance(value, bool):
                    raise _fail(f"{key} must be true, false or null, got {value!r}", where, f"{entry}.{key}")
                new[key] = lg[key]
            else:
                want = lg[key]
                got = tuple(value) if isinstance(want, tuple) and isinstance(value, list) else value
                if type(got) is not type(want) or got != want or (
                        isinstance(got, tuple) and [type(x) for x in got] != [type(x) for x in want]):
                    raise _fail(f"{key}={value!r} differs from the config's {want!r} (edited optimizer options are "
                                "refused: they would change the algorithm)", where, f"{entry}.{key}")
                new[key] = want
        groups.append(new)

    params = [p for g in optimizer.param_groups for p in g["params"]]
    amsgrad = any(g.get("amsgrad") for g in groups)
    keys = (*_ADAM_KEYS, "max_exp_avg_sq") if amsgrad else _ADAM_KEYS
    state: dict[int, dict[str, Tensor]] = {}
    for name, value in tensors.items():
        if not name.startswith(prefix):
            continue
        rest = name[len(prefix):]
        idx_text, _, key = rest.partition(".")
        if not idx_text.isdigit() or str(int(idx_text)) != idx_text or int(idx_text) >= len(params):
            raise _fail(f"names no parameter of the optimizer (it has {len(params)})", where, name)
        if key not in keys:
            raise _fail(f"unknown optimizer state {key!r} (expected {', '.join(keys)})", where, name)
        param = params[int(idx_text)]
        if key == "step":
            if tuple(value.shape) != () or value.dtype not in (torch.float32, torch.int64):
                raise _fail(f"step must be a scalar number, got {list(value.shape)} {value.dtype}", where, name)
            step = float(value)
            if not math.isfinite(step) or step < 0 or step != int(step):
                raise _fail(f"step must be a whole number >= 0, got {step}", where, name)
            value = torch.tensor(step, dtype=torch.float32)
        else:
            check_tensor_like(value, param.shape, param.dtype, where, name, finite=True,
                              low=0.0 if key != "exp_avg" else None)
        state.setdefault(int(idx_text), {})[key] = value
    for idx, entries in sorted(state.items()):
        missing = [k for k in keys if k not in entries]
        if missing:
            raise _fail(f"optimizer state of parameter {idx} lacks {', '.join(missing)}", where, f"{prefix}{idx}")
    return {"state": state, "param_groups": groups}


def load_optimizer(optimizer: torch.optim.Optimizer, state_dict: Mapping[str, Any], where: str, entry: str) -> None:
    """``optimizer.load_state_dict`` of a checked state, any error as a CheckpointError."""
    with entry_errors(where, entry, "optimizer state does not fit"):
        optimizer.load_state_dict(dict(state_dict))


def check_run_meta(meta: Mapping[str, Any], where: str) -> tuple[int | None, dict[str, Any] | None, str | None]:
    """A checkpoint's ``seed``, ``env_kwargs`` and ``env_id`` entries, each optional, checked for type and range
    (both agents' load paths read them alike); CheckpointError naming the entry otherwise."""
    seed = meta.get("seed")
    if seed is not None:
        check_int(seed, where, "meta.seed", 0, 2**63 - 1)
    env_kwargs = meta.get("env_kwargs")
    if env_kwargs is not None and not isinstance(env_kwargs, dict):
        raise CheckpointError("must be a JSON object", path=where, entry="meta.env_kwargs")
    env_id = meta.get("env_id")
    if env_id is not None and not isinstance(env_id, str):
        raise CheckpointError("must be a string", path=where, entry="meta.env_id")
    return seed, env_kwargs, env_id
