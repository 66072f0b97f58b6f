"""The memory contract: every memory core in tracerl is a :class:`MemoryCore`.

A core maps a time-major sequence of inputs to outputs while carrying a state::

    y, state = core(x, state, episode_start)
    # x: [T, B, input_dim]  float
    # episode_start: [T, B] bool, True on the first step of an episode
    # y: [T, B, output_dim]
    # state: dict name -> tensor, batch-first ([B, ...]), as declared by core.state_spec()

Reset convention (the only one in the library): where ``episode_start[t, b]`` is True, row ``b``
is reset to the initial state *before* it consumes ``x[t, b]``. Step mode is ``T == 1``; every core
guarantees that stepping one step at a time equals one call on the whole sequence.

Declared training hooks (defaults: none), the only way trainers learn what a core needs: :attr:`MemoryCore.input_form`
(encoded features or raw steps), :meth:`MemoryCore.training_inputs` (per-step reward, action, episode end, step mask),
:meth:`MemoryCore.set_training_progress`, :meth:`MemoryCore.memory_losses` and
:meth:`MemoryCore.memory_losses_required`, :attr:`MemoryCore.training_options`, and :attr:`MemoryCore.memory_name` with
:meth:`MemoryCore.memory_kwargs` (rebuilding a core object by name).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Dict, Literal, Mapping, Tuple

import torch
from torch import Tensor, nn

State = Dict[str, Tensor]
"""A core's recurrent state: name -> batch-first tensor ``[B, *shape]``."""

Trace = Dict[str, Tensor]
"""What an addressable core read, wrote or attended to: name -> time-major ``Tensor[T, B, ...]``."""


@dataclass(frozen=True)
class TensorSpec:
    """Shape (without the batch dimension) and dtype of one state entry."""

    shape: tuple[int, ...]
    dtype: torch.dtype = torch.float32


StateSpec = Mapping[str, TensorSpec]

InputForm = Literal["features", "raw_steps"]
"""What a core reads (:attr:`MemoryCore.input_form`): ``"features"``, the network's encoded observation (plus the
previous action and reward when the network is configured to feed them), projected to the core's ``input_dim``;
or ``"raw_steps"``, each step exactly as the agent saw it: the flat observation (no encoder layers), the previous
action and the previous reward (zero at episode starts), with no projection in front of the core."""


@dataclass(frozen=True)
class TrainingInputs:
    """The per-step training inputs a core wants when a trainer re-runs steps (:meth:`MemoryCore.training_inputs`):
    for each kind, the ``replay`` key the core reads it under (None: not wanted). Trainers pass what they have,
    time-major like the pass they replay, through :meth:`fill`."""

    reward: str | None = None
    """Each step's env reward (raw, before normalization), ``[T, B]`` float."""
    action: str | None = None
    """Each step's action, encoded as the network encodes the previous action, ``[T, B, A]`` float."""
    episode_end: str | None = None
    """``[T, B]`` bool: the episode ended at this step."""
    step_mask: str | None = None
    """``[T, B]`` bool: True on real rows (not padding, not the steps of an episode an env crash cut short)."""

    def fill(self, **providers: Callable[[], Any]) -> dict[str, Any]:
        """``{key: provider()}`` for every wanted kind a provider is given for (kinds: ``reward``, ``action``,
        ``episode_end``, ``step_mask``); providers of unwanted kinds are not called."""
        out: dict[str, Any] = {}
        for kind, provide in providers.items():
            if kind not in ("reward", "action", "episode_end", "step_mask"):
                raise ValueError(f"unknown training input {kind!r}")
            key = getattr(self, kind)
            if key is not None:
                out[key] = provide()
        return out


class MemoryCore(nn.Module, metaclass=abc.ABCMeta):
    """Base class of memory cores. Subclasses set ``input_dim`` and ``output_dim`` and implement
    :meth:`state_spec` and :meth:`forward`.

    The default :meth:`initial_state` is all zeros of the declared spec; override it for a learned
    or non-zero initial state (then also keep :meth:`reset_where` consistent, which uses it).
    """

    input_dim: int
    output_dim: int

    input_form: ClassVar[InputForm] = "features"
    """What the core reads (see :data:`InputForm`); the networks (:mod:`tracerl.policies`, the off-policy torso)
    build its input accordingly. A registered core's form is also known before it is built:
    :func:`tracerl.memory.registry.memory_input_form`."""

    stateless: ClassVar[bool] = False
    """True for a core that carries nothing from one step to the next (``mlp``): the networks then leave the previous
    action out of its input by default (``PolicyConfig.use_prev_action=None``), since the action fed back would
    itself be a one-step memory. Known before the core is built: :func:`tracerl.memory.registry.memory_is_stateless`."""

    memory_name: ClassVar[str | None] = None
    """The registry name that rebuilds a core object passed to an agent (with :meth:`memory_kwargs`), so its
    checkpoints load without the object; None: not rebuildable by name."""

    training_options: ClassVar[frozenset[str]] = frozenset()
    """Attributes an agent's options may set after construction (e.g. the strategic memory's ``learn_retention``
    and ``retention_coef``, from ``memory_learn_retention`` / ``memory_retention_coef``)."""

    @abc.abstractmethod
    def state_spec(self) -> StateSpec:
        """Names, shapes and dtypes of the state entries (batch dimension excluded)."""

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        """The state of ``batch_size`` fresh episodes: ``{name: Tensor[batch_size, *spec.shape]}``."""
        return {
            name: torch.zeros((batch_size, *spec.shape), dtype=spec.dtype, device=device)
            for name, spec in self.state_spec().items()
        }

    def reset_where(self, state: State, reset: Tensor) -> State:
        """Rows of ``state`` where ``reset`` ([B] bool) is True replaced by the initial state."""
        if not bool(reset.any()):
            return state
        init = self.initial_state(reset.shape[0], reset.device)
        out: State = {}
        for name, value in state.items():
            mask = reset.view(-1, *([1] * (value.dim() - 1)))
            out[name] = torch.where(mask, init[name].to(value.dtype), value)
        return out

    @abc.abstractmethod
    def forward(self, x: Tensor, state: State, episode_start: Tensor) -> tuple[Tensor, State]:  # noqa: D401
        """Consume ``x`` [T, B, input_dim] from ``state``; return ``y`` [T, B, output_dim] and the next state."""

    def forward_with_trace(
        self, x: Tensor, state: State, episode_start: Tensor
    ) -> tuple[Tensor, State, Trace]:
        """Like :meth:`forward`, plus a trace for inspection: name -> ``Tensor[T, B, ...]`` (e.g. read and
        write weights over memory slots, attention over past steps). Cores without addressable memory
        return an empty trace; addressable cores override this and implement :meth:`forward` through it."""
        y, state = self(x, state, episode_start)
        return y, state, {}

    # -- optional hooks for trainers (defaults: nothing to record, no extra loss) ------------------
    def replay_spec(self) -> Mapping[str, TensorSpec]:
        """Per-step decisions (name -> spec without the ``[T, B]`` dims) that a trainer must record from the
        trace while acting and pass back to :meth:`forward_replay` when it re-runs the same steps, so that a
        core with discrete or random choices (e.g. which entry to evict) replays exactly what the agent did."""
        return {}

    def forward_replay(
        self, x: Tensor, state: State, episode_start: Tensor, replay: Mapping[str, Tensor] | None
    ) -> tuple[Tensor, State, Trace]:
        """:meth:`forward_with_trace` with recorded decisions (``replay[name]``: ``[T, B, ...]``, the names of
        :meth:`replay_spec`). Cores without decisions ignore ``replay``."""
        return self.forward_with_trace(x, state, episode_start)

    def memory_losses(self, trace: Trace, mask: Tensor) -> Dict[str, Tuple[Tensor, float]]:
        """Extra losses of the core computed from a training pass's trace (``mask`` ``[T, B]`` is 1 on real
        steps): ``{log name: (loss, weight)}``; the trainer adds ``weight * loss`` and logs ``loss``."""
        return {}

    def training_inputs(self) -> TrainingInputs:
        """Which per-step training inputs (reward, action, episode end, step mask) the core wants in ``replay``
        when a trainer re-runs steps, and under which keys. Default: none."""
        return TrainingInputs()

    def set_training_progress(self, progress: float) -> None:
        """Training progress in ``[0, 1]`` (the trainer calls it before every rollout or vector step, and after a
        checkpoint is restored), for cores with a schedule of their own. Default: nothing."""

    def memory_losses_required(self) -> str | None:
        """None when the core acts as intended without its :meth:`memory_losses` being trained; otherwise why not
        and what to change (an algorithm that does not train them refuses the core with that sentence)."""
        return None

    def memory_kwargs(self) -> dict[str, Any] | None:
        """Constructor keyword arguments (besides ``input_dim``) that rebuild this core by :attr:`memory_name`;
        None when it cannot be rebuilt by name."""
        return None


class AddressableCore(MemoryCore):
    """A core with addressable memory: it implements :meth:`forward_with_trace`, and :meth:`forward`
    is that call without the trace."""

    def forward(self, x: Tensor, state: State, episode_start: Tensor) -> tuple[Tensor, State]:
        y, state, _ = self.forward_with_trace(x, state, episode_start)
        return y, state

    @abc.abstractmethod
    def forward_with_trace(self, x: Tensor, state: State, episode_start: Tensor) -> tuple[Tensor, State, Trace]:
        """Consume ``x`` like :meth:`MemoryCore.forward` and also return the trace."""


def check_inputs(core: MemoryCore, x: Tensor, state: State, episode_start: Tensor) -> None:
    """Raise ValueError naming the offending argument when shapes break the contract."""
    if x.dim() != 3:
        raise ValueError(f"{type(core).__name__}: x must be [T, B, D], got shape {tuple(x.shape)}")
    T, B, D = x.shape
    if D != core.input_dim:
        raise ValueError(f"{type(core).__name__}: x has feature size {D}, core.input_dim is {core.input_dim}")
    if tuple(episode_start.shape) != (T, B):
        raise ValueError(
            f"{type(core).__name__}: episode_start must be [T, B] = {(T, B)}, got {tuple(episode_start.shape)}"
        )
    if episode_start.dtype != torch.bool:
        raise ValueError(f"{type(core).__name__}: episode_start must be bool, got {episode_start.dtype}")
    for name, spec in core.state_spec().items():
        if name not in state:
            raise ValueError(f"{type(core).__name__}: state is missing entry {name!r}")
        if tuple(state[name].shape) != (B, *spec.shape):
            raise ValueError(
                f"{type(core).__name__}: state[{name!r}] must be {(B, *spec.shape)}, got {tuple(state[name].shape)}"
            )


def memory_cores(module: nn.Module) -> list[MemoryCore]:
    """Every memory core inside ``module`` (itself included), in module order."""
    return [m for m in module.modules() if isinstance(m, MemoryCore)]


def describe_memory(memory: "str | MemoryCore") -> tuple[str, dict[str, Any] | None]:
    """``(name, kwargs)`` recorded for ``memory``: a registry name as is (no kwargs); a core object by its declared
    :attr:`~MemoryCore.memory_name` and :meth:`~MemoryCore.memory_kwargs` when it has them, else its class name
    (a checkpoint of it then loads only with ``memory=`` passed again)."""
    if isinstance(memory, str):
        return memory, None
    kwargs = memory.memory_kwargs() if isinstance(memory, MemoryCore) else None
    if isinstance(memory, MemoryCore) and memory.memory_name and kwargs is not None:
        return memory.memory_name, kwargs
    return type(memory).__name__, None


def state_index(state: State, index: Tensor | slice | int) -> State:
    """Select batch rows of every entry: ``{k: v[index]}``."""
    return {k: v[index] for k, v in state.items()}


def state_detach(state: State) -> State:
    """Detach every entry from the autograd graph."""
    return {k: v.detach() for k, v in state.items()}


def state_to(state: State, device: torch.device | str) -> State:
    """Move every entry to ``device``."""
    return {k: v.to(device) for k, v in state.items()}
