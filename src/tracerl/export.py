"""Export of an agent's acting policy with its memory state as explicit inputs and outputs (ONNX, TorchScript).

``agent.export("policy.onnx")`` (or ``tracerl export RUN --format onnx --out policy.onnx``) writes a one-step graph

    inputs:  observation leaves, episode_start [B] bool, every state tensor [B, ...], prev_reward [B] (if the
             policy reads it), noise [B, ...] (stochastic form only)
    outputs: action [B, ...] (env form), value [B] (PPO agents), the next state tensors (same order and shapes)

and next to it a JSON sidecar (``policy.onnx.json``, no pickle) naming every input and output with its shape
and dtype, which output feeds which input at the next step, and each state tensor's initial value. The batch
dimension ``B`` is dynamic. To act, feed the state outputs back as the next step's state inputs; the graph
resets the rows whose ``episode_start`` is True to the initial state itself (before it reads them), so a
caller never resets anything by hand. The state tensors are the ``state`` of :meth:`tracerl.TraceRL.predict`
(``memory.<entry>`` for each entry of the core's state spec, and ``prev_action`` when the policy feeds its
previous action back), named ``state.<key>`` as inputs and ``next_state.<key>`` as outputs.

Inside the graph (so a caller needs nothing from tracerl):

- observation preprocessing: one input per leaf of the observation space (``obs`` for a plain space;
  ``obs.<key>`` / ``obs.<index>`` for Dict / Tuple leaves, in the space's order). Box leaves are float32 in the
  space's shape; images (uint8 Box 0-255) are uint8 and scaled to [0, 1] inside; Discrete leaves are int64
  indices (``start`` included) one-hot encoded inside, MultiDiscrete int64 arrays likewise; MultiBinary float32
  0/1. An out-of-range index one-hot encodes to all zeros (no error: ONNX has no exceptions).
- the action's conversion to the env's form: Discrete / MultiDiscrete ``+ start`` (int64), Box clipped to its
  bounds (or tanh-squashed into them; integer Boxes rounded; float32), MultiBinary int8.
- the deterministic action (``deterministic=True``, the default) is the distribution's mode: argmax of the
  logits (Discrete, MultiDiscrete, SAC-discrete, R2D2's greedy Q), the Gaussian mean (Box; SAC: ``tanh(mean)``,
  TD3: the actor's output), ``logit > 0`` (MultiBinary), exactly what ``predict(..., deterministic=True)`` does.
  The stochastic form (PPO only, ``deterministic=False``) takes the randomness as an input ``noise`` so the
  graph stays a pure function: uniform(0, 1) noise for Discrete / MultiDiscrete (Gumbel-max sampling) and
  MultiBinary (``u < sigmoid(logit)``), standard normal noise for Box (``mean + std * noise``).

Which cores export to what (checked by the tests, which parametrize over the registry): every registered core
exports to TorchScript, and every one but the DNC to ONNX (ONNX symbolics below write ``cummax``, ``cumprod``,
``unfold``, ``eye`` and ``log_sigmoid`` in ONNX terms). The DNC sorts its slot usages, and torch's CPU sort orders
ties differently from ONNX's TopK, so an ONNX DNC would allocate other slots after a reset: refused with
:class:`~tracerl.errors.ExportError` naming ``aten::sort``. A core that draws random numbers while acting (the
strategic memory while its retention still explores, ``retention_explore > 0``) cannot be reproduced by a
deterministic graph and raises ExportError naming it. Every export is verified
before the file is written: the traced graph is run for several steps with random episode starts at a batch
size other than the one it was traced with and compared with the policy in PyTorch (and, for ONNX, run in
onnxruntime when it is installed); a graph that does not reproduce the policy (data-dependent control flow
frozen by tracing, an op that ONNX lacks) raises ExportError naming the core and the op where known.
"""

from __future__ import annotations

import io
import json
import math
import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

from . import __version__
from .errors import ConfigError, ExportError
from .io.checkpoint import atomic_write_bytes
from .io.spaces import space_to_json
from .policies.encoders import _leaves, flat_dim, is_image_space

__all__ = ["EXPORT_FORMATS", "ExportSpec", "TensorInfo", "StateInfo", "export_agent", "read_export_spec",
           "OnnxPolicy", "sidecar_path"]

EXPORT_FORMATS = ("onnx", "torchscript")
"""Formats :func:`export_agent` writes."""

SPEC_FORMAT = "tracerl.export"
SPEC_VERSION = 1
ONNX_OPSET = 17
VERIFY_TOLERANCE = 1e-4
"""Largest absolute difference allowed between the exported graph and the policy in PyTorch (actions, values,
states) when an export is verified."""

_TORCH_DTYPES = {torch.float32: "float32", torch.int64: "int64", torch.bool: "bool", torch.uint8: "uint8",
                 torch.int8: "int8", torch.float64: "float64", torch.int32: "int32"}
_NP_DTYPES = {"float32": np.float32, "int64": np.int64, "bool": np.bool_, "uint8": np.uint8, "int8": np.int8,
              "float64": np.float64, "int32": np.int32}


# -- the sidecar --------------------------------------------------------------------------------------------
@dataclass
class TensorInfo:
    """One input or output of the exported graph."""

    name: str
    """The graph's name for it."""
    shape: list[Any]
    """Its shape; ``"batch"`` marks the dynamic batch dimension."""
    dtype: str
    """numpy dtype name (``float32``, ``int64``, ``bool``, ``uint8``, ``int8``)."""
    role: str
    """``observation``, ``episode_start``, ``state``, ``prev_reward`` or ``noise`` (inputs); ``action``,
    ``value`` or ``state`` (outputs)."""
    description: str = ""
    """What it holds, in words."""


@dataclass
class StateInfo:
    """One state tensor: fed back from ``output`` at step t to ``input`` at step t + 1."""

    key: str
    """Its key in :meth:`tracerl.TraceRL.predict`'s state (``memory.<entry>`` or ``prev_action``)."""
    input: str
    """The input it is read from."""
    output: str
    """The output that holds it after the step."""
    shape: list[int]
    """Shape of one row (batch dimension excluded)."""
    dtype: str
    """numpy dtype name."""
    initial_fill: float | None
    """The value of every element of the initial state when they are all equal (zeros for most cores), else None."""
    initial: Any = None
    """The initial value of one row as nested lists, when not every element is ``initial_fill``."""


@dataclass
class ExportSpec:
    """The JSON sidecar written next to an exported model (see the module docstring)."""

    model_file: str
    """The model's file name (in the sidecar's directory)."""
    model_format: str
    """``onnx`` or ``torchscript``."""
    algo: str
    """The agent's registered algorithm (``ppo``, ``a2c``, ``reinforce``, ``sac``, ``td3``, ``r2d2``, ``drqn``)."""
    memory: str
    """The memory core's registered name (or class name)."""
    deterministic: bool
    """True: the action is the distribution's mode (``action_rule``); False: sampled from the ``noise`` input."""
    action_rule: str
    """How the action is chosen, in words."""
    observation_preprocessing: str
    """What the graph does to the observation inputs, in words."""
    inputs: list[TensorInfo]
    """Every input, in the graph's order."""
    outputs: list[TensorInfo]
    """Every output, in the graph's order."""
    state: list[StateInfo]
    """The state tensors, in the graph's order: what to feed back and how to start."""
    observation_space: dict[str, Any]
    """The agent's observation space (tracerl's JSON form)."""
    action_space: dict[str, Any]
    """The agent's action space (tracerl's JSON form)."""
    opset: int | None = None
    """ONNX opset (None for TorchScript)."""
    verified: dict[str, Any] = field(default_factory=dict)
    """How the export was checked against the policy: steps, batch size, largest difference, runtime."""
    tracerl_version: str = __version__
    format: str = SPEC_FORMAT
    version: int = SPEC_VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any, where: str = "sidecar") -> "ExportSpec":
        """Rebuild from :meth:`to_json`'s dict; ConfigError naming the file and the bad key."""
        if not isinstance(data, dict) or data.get("format") != SPEC_FORMAT:
            raise ConfigError(f"{where}: not a tracerl export sidecar (format must be {SPEC_FORMAT!r})")
        if data.get("version") != SPEC_VERSION:
            raise ConfigError(f"{where}: sidecar version {data.get('version')!r} is not {SPEC_VERSION}")
        try:
            d = dict(data)
            d["inputs"] = [TensorInfo(**t) for t in d["inputs"]]
            d["outputs"] = [TensorInfo(**t) for t in d["outputs"]]
            d["state"] = [StateInfo(**s) for s in d["state"]]
            return cls(**d)
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"{where}: malformed sidecar ({exc})") from exc

    def initial_state(self, batch_size: int) -> dict[str, np.ndarray]:
        """The initial state of ``batch_size`` rows: input name -> array ``[batch_size, *shape]``."""
        out = {}
        for s in self.state:
            dtype = _NP_DTYPES[s.dtype]
            if s.initial_fill is not None:
                row = np.full(s.shape, s.initial_fill, dtype=dtype)
            else:
                row = np.asarray(s.initial, dtype=dtype).reshape(s.shape)
            out[s.input] = np.ascontiguousarray(np.broadcast_to(row, (batch_size, *s.shape)))
        return out


def sidecar_path(model_path: str | Path) -> Path:
    """Where the sidecar of ``model_path`` goes: the model's path with ``.json`` appended."""
    p = Path(model_path)
    return p.with_name(p.name + ".json")


def read_export_spec(path: str | Path) -> ExportSpec:
    """Read a sidecar (``path`` is the sidecar or the model next to it)."""
    p = Path(path)
    if p.suffix != ".json":
        p = sidecar_path(p)
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{p}: the sidecar is not JSON ({exc})") from exc
    return ExportSpec.from_json(data, str(p))


# -- preprocessing and action conversion inside the graph ---------------------------------------------------
@dataclass
class _ObsLeaf:
    name: str
    shape: tuple[int, ...]
    dtype: str
    kind: str  # box | image | onehot | binary
    width: int
    description: str


def _obs_leaves(space: gym.Space) -> list[_ObsLeaf]:
    leaves = _leaves(space)
    composite = isinstance(space, (spaces.Dict, spaces.Tuple))
    out = []
    for leaf in leaves:
        path = leaf.path
        name = "obs"
        if composite:  # obs['a'][0] -> obs.a.0
            name = "obs." + ".".join(str(k) for k in re.findall(r"\[(?:'([^']*)'|(\d+))\]", path) for k in k if k)
        s = leaf.space
        if isinstance(s, spaces.Box):
            image = is_image_space(s)
            out.append(_ObsLeaf(name, tuple(s.shape), "uint8" if image else "float32", "image" if image else "box",
                                leaf.width, f"{path}: " + ("uint8 image, scaled to [0, 1] inside" if image
                                                           else "float32 in the space's shape")))
        elif isinstance(s, spaces.Discrete):
            out.append(_ObsLeaf(name, (), "int64", "onehot", leaf.width,
                                f"{path}: int64 index in [{int(s.start)}, {int(s.start) + int(s.n)}), one-hot inside"))
        elif isinstance(s, spaces.MultiDiscrete):
            out.append(_ObsLeaf(name, tuple(s.shape), "int64", "onehot", leaf.width,
                                f"{path}: int64 indices, one-hot encoded inside"))
        else:  # MultiBinary
            out.append(_ObsLeaf(name, tuple(s.shape), "float32", "binary", leaf.width, f"{path}: float32 0/1"))
    return out


class _Preprocess(nn.Module):
    """Observation leaves (raw form) -> the flat float32 observation ``[B, obs_dim]`` of :func:`preprocess`."""

    def __init__(self, space: gym.Space) -> None:
        super().__init__()
        self.leaves = _obs_leaves(space)
        self.obs_dim = flat_dim(space)
        for i, leaf in enumerate(_leaves(space)):
            s = leaf.space
            if isinstance(s, (spaces.Discrete, spaces.MultiDiscrete)):
                nvec = np.asarray([s.n] if isinstance(s, spaces.Discrete) else s.nvec, dtype=np.int64).reshape(-1)
                start = np.asarray([s.start], dtype=np.int64).reshape(-1) if isinstance(s, spaces.Discrete) else \
                    np.asarray(s.start, dtype=np.int64).reshape(-1)
                comp = np.repeat(np.arange(nvec.size), nvec)  # column j one-hot encodes component comp[j]
                val = np.concatenate([np.arange(n) for n in nvec]) + start[comp]  # ... and is 1 where it equals val[j]
                self.register_buffer(f"comp{i}", torch.as_tensor(comp), persistent=False)
                self.register_buffer(f"val{i}", torch.as_tensor(val), persistent=False)

    def forward(self, xs: Sequence[Tensor]) -> Tensor:
        parts = []
        for i, (leaf, x) in enumerate(zip(self.leaves, xs)):
            if leaf.kind == "onehot":
                idx = x.to(torch.int64).reshape(-1, int(np.prod(leaf.shape, dtype=np.int64)))
                comp, val = getattr(self, f"comp{i}"), getattr(self, f"val{i}")
                parts.append((idx.index_select(1, comp) == val).to(torch.float32))
            else:
                flat = x.to(torch.float32).reshape(-1, leaf.width)
                parts.append(flat / 255.0 if leaf.kind == "image" else flat)
        return torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]


def _ppo_action(policy: nn.Module, h: Tensor, deterministic: bool, noise: Tensor | None) -> tuple[Tensor, Tensor]:
    """Raw action ``[B, *raw_shape]`` and env action from the heads' input ``h [B, head_dim]`` (PPO action heads;
    :meth:`~tracerl.policies.RecurrentActorCritic.head_features`)."""
    from .policies.distributions import DiscreteHead, GaussianHead, MultiBinaryHead, MultiDiscreteHead

    head = policy.actor
    dist = head(h)
    if deterministic:
        raw = dist.mode()
    elif isinstance(head, (DiscreteHead, MultiDiscreteHead)):
        assert noise is not None
        gumbel = -torch.log(-torch.log(noise.clamp(1e-20, 1.0 - 1e-7)))
        raw = (dist.logits + gumbel).argmax(dim=-1)
    elif isinstance(head, GaussianHead):
        raw = dist.mean + dist.log_std.exp() * noise
    else:  # MultiBinary
        raw = (noise < torch.sigmoid(dist.logits)).to(torch.float32)
    return raw, _ppo_to_env(head, raw)


def _ppo_to_env(head: nn.Module, raw: Tensor) -> Tensor:
    """:meth:`ActionHead.to_env` in torch ops (so it can be traced)."""
    from .policies.distributions import DiscreteHead, GaussianHead, MultiDiscreteHead

    space = head.space
    if isinstance(head, DiscreteHead):
        return raw.to(torch.int64) + head.start
    if isinstance(head, MultiDiscreteHead):
        start = torch.as_tensor(head.start, dtype=torch.int64)
        return (raw.to(torch.int64) + start).reshape(-1, *space.shape)
    if isinstance(head, GaussianHead):
        low = torch.as_tensor(head._low, dtype=torch.float32)
        high = torch.as_tensor(head._high, dtype=torch.float32)
        a = low + (torch.tanh(raw) + 1.0) / 2.0 * (high - low) if head.squash else raw
        a = torch.minimum(torch.maximum(a, low), high)
        if np.issubdtype(space.dtype, np.integer):
            a = torch.round(a)
        return a.reshape(-1, *space.shape)
    return raw.to(torch.int8).reshape(-1, *space.shape)  # MultiBinary


def _codec_to_env(codec: Any, a: Tensor) -> Tensor:
    """:meth:`ActionCodec.to_env` (off-policy agents) in torch ops."""
    if codec.discrete:
        return a.to(torch.int64) + codec.start
    low = torch.as_tensor(codec._low, dtype=torch.float32)
    high = torch.as_tensor(codec._high, dtype=torch.float32)
    x = a.clamp(-1.0, 1.0)
    env = torch.minimum(torch.maximum(low + (x + 1.0) / 2.0 * (high - low), low), high)
    return env.reshape(-1, *codec.space.shape)


# -- the step module ------------------------------------------------------------------------------------------
class _PolicyStep(nn.Module):
    """One acting step of an agent with explicit state: see the module docstring for inputs and outputs."""

    def __init__(self, agent: Any, deterministic: bool) -> None:
        super().__init__()
        from .algos.offpolicy_learner import OffPolicyLearner

        self.offpolicy = isinstance(agent.learner, OffPolicyLearner)
        self.deterministic = deterministic
        self.pre = _Preprocess(agent.observation_space)
        self.use_prev_action = bool(agent.policy_config.use_prev_action)
        self.use_prev_reward = bool(agent.policy_config.use_prev_reward)
        if self.offpolicy:
            algorithm = agent.algorithm
            self.net = agent.policy  # the acting torso
            head_name = "actor" if hasattr(algorithm, "actor") else "q_head"
            self.head = getattr(algorithm, head_name)  # registered so its parameters belong to the graph
            self._act: Callable[[Tensor], Tensor] = lambda h: algorithm.act(
                {algorithm.acting_torso(): h}, explore=False, record=False)
            self.codec = agent.codec
            self.action_shape, self.action_dtype = tuple(agent.codec.shape), agent.codec.dtype
        else:
            self.net = agent.policy
            self.action_shape, self.action_dtype = tuple(agent.policy.action_shape), agent.policy.action_dtype
        core = self.net.core
        self.core_keys = list(core.state_spec())
        init = core.initial_state(1, next(self.net.parameters()).device)
        for k in self.core_keys:
            self.register_buffer(f"init_{k}", init[k].detach().clone(), persistent=False)
        self.state_keys = [f"memory.{k}" for k in self.core_keys] + (["prev_action"] if self.use_prev_action else [])
        self.n_obs = len(self.pre.leaves)

    def noise_shape(self) -> tuple[int, ...] | None:
        """Shape of one row of the ``noise`` input (None: the deterministic form has none)."""
        if self.deterministic:
            return None
        from .policies.distributions import MultiDiscreteHead

        head = self.net.actor
        if isinstance(head, MultiDiscreteHead):
            return tuple(head.gather_index.shape)
        return (head.action_feat_dim,) if self.action_shape else (head.n,)

    def forward(self, *args: Tensor) -> tuple[Tensor, ...]:
        obs_leaves = list(args[: self.n_obs])
        i = self.n_obs
        starts = args[i].to(torch.bool)
        i += 1
        state = {}
        for k in self.state_keys:
            state[k] = args[i]
            i += 1
        reward = None
        if self.use_prev_reward:
            reward = args[i].to(torch.float32)
            i += 1
        noise = args[i] if not self.deterministic else None

        obs = self.pre(obs_leaves)
        B = obs.shape[0]
        core_state = {}
        for k in self.core_keys:  # rows that start an episode begin from the initial state (done by the core too)
            v = state[f"memory.{k}"]
            mask = starts.reshape(-1, *([1] * (v.dim() - 1)))
            core_state[k] = torch.where(mask, getattr(self, f"init_{k}").to(v.dtype).expand_as(v), v)
        if self.use_prev_action:
            prev_action = state["prev_action"]
        else:
            prev_action = torch.zeros((B, *self.action_shape), dtype=self.action_dtype)
        if reward is None:
            reward = torch.zeros_like(obs[:, 0])
        if self.offpolicy:
            h, core_state = self.net(obs[None], core_state, starts[None], prev_action[None], reward[None])
            raw = self._act(h[0])
            action = _codec_to_env(self.codec, raw)
            outs: list[Tensor] = [action]
        else:
            head_in, core_state = self.net.head_features(obs[None], core_state, starts[None], prev_action[None],
                                                         reward[None])
            raw, action = _ppo_action(self.net, head_in[0], self.deterministic, noise)
            outs = [action, self.net.critic(head_in)[0]]
        # A core that never reads episode_start (mlp) would lose the input in ONNX: keep it in the graph.
        outs[0] = torch.where(starts.reshape(-1, *([1] * (outs[0].dim() - 1))), outs[0], outs[0])
        outs += [core_state[k] for k in self.core_keys]
        if self.use_prev_action:
            outs.append(raw.to(self.action_dtype))
        return tuple(outs)


# -- building the spec ----------------------------------------------------------------------------------------
def _dt(dtype: torch.dtype) -> str:
    return _TORCH_DTYPES[dtype]


def _action_rule(step: _PolicyStep, agent: Any) -> str:
    if not step.deterministic:
        return ("a sample: Gumbel-max with the uniform(0, 1) noise input (Discrete / MultiDiscrete), noise < "
                "sigmoid(logit) (MultiBinary), mean + std * noise with standard normal noise (Box)")
    if step.offpolicy:
        return {"sac": "SAC: tanh(mean) of the actor (Box) or argmax of its logits (Discrete)",
                "td3": "TD3: the deterministic actor's output, without exploration noise",
                "r2d2": "R2D2: argmax of Q (greedy, no epsilon)",
                "drqn": "DRQN: argmax of Q (greedy, no epsilon)"}.get(agent.algo, "deterministic")
    return "the distribution's mode: argmax of the logits (Discrete, MultiDiscrete), the Gaussian mean (Box), " \
           "logit > 0 (MultiBinary); as predict(deterministic=True)"


def _build_spec(agent: Any, step: _PolicyStep, example: tuple[Tensor, ...], fmt: str, model_file: str,
                batch_size: int | None = None) -> ExportSpec:
    spec = _build_spec_dynamic(agent, step, example, fmt, model_file)
    if batch_size is not None:
        for t in spec.inputs + spec.outputs:
            t.shape = [batch_size if d == "batch" else d for d in t.shape]
    return spec


def _build_spec_dynamic(agent: Any, step: _PolicyStep, example: tuple[Tensor, ...], fmt: str,
                        model_file: str) -> ExportSpec:
    inputs: list[TensorInfo] = []
    for leaf in step.pre.leaves:
        inputs.append(TensorInfo(leaf.name, ["batch", *leaf.shape], leaf.dtype, "observation", leaf.description))
    inputs.append(TensorInfo("episode_start", ["batch"], "bool", "episode_start",
                             "True on the first observation of an episode: the row's state is reset inside"))
    outputs: list[TensorInfo] = []
    with torch.no_grad():
        out_example = step(*example)
    act = out_example[0]
    outputs.append(TensorInfo("action", ["batch", *act.shape[1:]], _dt(act.dtype), "action",
                              "the env action (" + _action_rule(step, agent) + ")"))
    n_fixed = 1
    if not step.offpolicy:
        outputs.append(TensorInfo("value", ["batch"], "float32", "value", "the critic's value estimate"))
        n_fixed = 2
    state_info: list[StateInfo] = []
    init = {f"memory.{k}": getattr(step, f"init_{k}")[0] for k in step.core_keys}
    if step.use_prev_action:
        init["prev_action"] = torch.zeros(step.action_shape, dtype=step.action_dtype)
    for j, key in enumerate(step.state_keys):
        value = out_example[n_fixed + j]
        shape = [int(n) for n in value.shape[1:]]
        row = init[key].detach().cpu()
        flat = row.reshape(-1)
        fill = float(flat[0]) if flat.numel() and bool((flat == flat[0]).all()) else (0.0 if not flat.numel() else None)
        what = "the previous raw action (zeroed at an episode start inside)" if key == "prev_action" else \
            f"the memory core's state entry {key[len('memory.'):]!r}"
        state_info.append(StateInfo(key, f"state.{key}", f"next_state.{key}", shape, _dt(value.dtype), fill,
                                    None if fill is not None else row.tolist()))
        inputs.append(TensorInfo(f"state.{key}", ["batch", *shape], _dt(value.dtype), "state", what))
        outputs.append(TensorInfo(f"next_state.{key}", ["batch", *shape], _dt(value.dtype), "state",
                                  f"{what} after the step: feed it back as state.{key}"))
    if step.use_prev_reward:
        inputs.append(TensorInfo("prev_reward", ["batch"], "float32", "prev_reward",
                                 "the reward received after the previous action (any value at an episode start)"))
    if not step.deterministic:
        shape = step.noise_shape()
        from .policies.distributions import GaussianHead

        dist = "normal(0, 1)" if isinstance(step.net.actor, GaussianHead) else "uniform(0, 1)"
        inputs.append(TensorInfo("noise", ["batch", *shape], "float32", "noise", f"fresh {dist} noise every step"))
    pre = ("inside the graph: Box leaves float32 as they are, uint8 images scaled to [0, 1], Discrete / "
           "MultiDiscrete indices (start included) one-hot encoded, MultiBinary 0/1 as float32; Dict / Tuple leaves "
           "are separate inputs in the space's order")
    return ExportSpec(model_file=model_file, model_format=fmt, algo=agent.algo, memory=str(agent.policy_config.memory),
                      deterministic=step.deterministic, action_rule=_action_rule(step, agent),
                      observation_preprocessing=pre, inputs=inputs, outputs=outputs, state=state_info,
                      observation_space=space_to_json(agent.observation_space),
                      action_space=space_to_json(agent.action_space),
                      opset=ONNX_OPSET if fmt == "onnx" else None)


# -- example inputs and verification -----------------------------------------------------------------------------
def _random_inputs(spec: ExportSpec, batch: int, gen: np.random.Generator, starts: np.ndarray,
                   obs_space: gym.Space) -> dict[str, np.ndarray]:
    """Random observations of the space (one array per observation input), ``starts``, random noise/rewards."""
    sample = _sample_obs(obs_space, batch, gen)
    feeds: dict[str, np.ndarray] = {}
    obs_inputs = [t for t in spec.inputs if t.role == "observation"]
    for t, arr in zip(obs_inputs, sample):
        feeds[t.name] = np.ascontiguousarray(arr, dtype=_NP_DTYPES[t.dtype])
    feeds["episode_start"] = starts.astype(np.bool_)
    for t in spec.inputs:
        if t.role == "prev_reward":
            feeds[t.name] = gen.normal(size=batch).astype(np.float32)
        elif t.role == "noise":
            shape = (batch, *t.shape[1:])
            feeds[t.name] = (gen.normal(size=shape) if "normal" in t.description else
                             gen.uniform(0.001, 0.999, size=shape)).astype(np.float32)
    return feeds


def _sample_obs(space: gym.Space, batch: int, gen: np.random.Generator) -> list[np.ndarray]:
    """Random observations ``[batch, ...]`` of every leaf of ``space`` (bounded values for unbounded Boxes)."""
    out = []
    for leaf in _leaves(space):
        s = leaf.space
        if isinstance(s, spaces.Box):
            low = np.where(np.isfinite(s.low), s.low, -1.0)
            high = np.where(np.isfinite(s.high), s.high, 1.0)
            x = gen.uniform(low, high, size=(batch, *s.shape))
            out.append(np.rint(x) if np.issubdtype(s.dtype, np.integer) else x)
        elif isinstance(s, spaces.Discrete):
            out.append(int(s.start) + gen.integers(0, int(s.n), size=batch))
        elif isinstance(s, spaces.MultiDiscrete):
            out.append(np.asarray(s.start) + gen.integers(0, np.asarray(s.nvec), size=(batch, *s.shape)))
        else:
            out.append(gen.integers(0, 2, size=(batch, *s.shape)))
    return out


def _to_torch(feeds: dict[str, np.ndarray], spec: ExportSpec) -> tuple[Tensor, ...]:
    return tuple(torch.from_numpy(np.ascontiguousarray(feeds[t.name])) for t in spec.inputs)


def _rollout(run: Callable[[dict[str, np.ndarray]], list[np.ndarray]], spec: ExportSpec, obs_space: gym.Space,
             batch: int, steps: int, seed: int) -> list[list[np.ndarray]]:
    """Outputs of ``run`` over ``steps`` steps with random observations and episode starts, state fed back."""
    gen = np.random.default_rng(seed)
    state = spec.initial_state(batch)
    results = []
    n_fixed = len(spec.outputs) - len(spec.state)
    for t in range(steps):
        starts = gen.random(batch) < 0.2
        if t == 0:
            starts[:] = True
        feeds = _random_inputs(spec, batch, gen, starts, obs_space)
        feeds.update(state)
        outs = run(feeds)
        results.append(outs)
        state = {s.input: outs[n_fixed + j] for j, s in enumerate(spec.state)}
    return results


def _max_diff(a: list[list[np.ndarray]], b: list[list[np.ndarray]]) -> float:
    worst = 0.0
    for xs, ys in zip(a, b):
        for x, y in zip(xs, ys):
            if x.shape != y.shape:
                return math.inf
            if x.size:
                worst = max(worst, float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))))
    return worst


def _torch_runner(module: Callable[..., Any], spec: ExportSpec) -> Callable[[dict[str, np.ndarray]], list[np.ndarray]]:
    def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        with torch.no_grad():
            outs = module(*_to_torch(feeds, spec))
        return [o.detach().cpu().numpy() for o in outs]
    return run


def _check_acting_is_deterministic(step: _PolicyStep, spec: ExportSpec, obs_space: gym.Space, name: str) -> None:
    """ExportError when two runs with the same inputs and different torch seeds differ (a core draws noise)."""
    runs = []
    for seed in (1, 2):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            runs.append(_rollout(_torch_runner(step, spec), spec, obs_space, 3, 4, seed=0))
    if _max_diff(runs[0], runs[1]) > 0:
        raise ExportError(
            f"memory core {name!r} draws random numbers while acting (e.g. the strategic memory's exploring "
            "retention, retention_explore > 0), so no deterministic graph reproduces it; export after its "
            "retention stops exploring (learned retention past retention_explore_fraction with "
            "retention_explore_end=0)", core=name)


# -- ONNX symbolics for ops the legacy exporter lacks (registered only while exporting) ------------------------
def _static_size(x: Any, dim: int) -> int | None:
    """The static size of ``x``'s dimension ``dim`` in the graph being exported (None when dynamic)."""
    from torch.onnx import symbolic_helper as sh

    rank = sh._get_tensor_rank(x)
    sizes = sh._get_tensor_sizes(x) if rank is not None else None
    if rank is None or sizes is None or sizes[dim % rank] is None:
        return None
    return int(sizes[dim % rank])


def _slice(g: Any, x: Any, i: int, dim: int) -> Any:
    c = lambda v: g.op("Constant", value_t=torch.tensor([v], dtype=torch.int64))  # noqa: E731
    return g.op("Slice", x, c(i), c(i + 1), c(dim))


def _masked_prefix(g: Any, x: Any, dim: int, fill: float, op: str) -> tuple[Any, Any, list[int]]:
    """For a ``dim`` of dynamic size ``n``: ``x`` moved to ``[n_t, n_s, rest...]`` with the entries ``s > t`` set to
    ``fill`` (so a reduction over axis 1 is the prefix reduction), and the permutation that moves ``dim`` back."""
    from torch.onnx import symbolic_helper as sh

    rank = sh._get_tensor_rank(x)
    if rank is None:
        raise ExportError(f"{op} of a tensor of unknown rank cannot be written in ONNX", op=op, fmt="onnx")
    dim %= rank
    perm = [dim] + [i for i in range(rank) if i != dim]
    inverse = [perm.index(i) for i in range(rank)]
    xt = g.op("Transpose", x, perm_i=perm)  # [n, rest...]
    c = lambda v: g.op("Constant", value_t=torch.tensor(v, dtype=torch.int64))  # noqa: E731
    n = g.op("Gather", g.op("Shape", xt), c(0), axis_i=0)
    ar = g.op("Range", c(0), n, c(1))
    mask = g.op("LessOrEqual", sh._unsqueeze_helper(g, ar, [0]), sh._unsqueeze_helper(g, ar, [1]))  # [t, s]: s <= t
    mask = sh._unsqueeze_helper(g, mask, list(range(2, rank + 1))) if rank > 1 else mask
    scalar = sh._try_get_scalar_type(x)
    dtype = scalar.dtype() if scalar is not None else torch.float32
    if not dtype.is_floating_point and fill in (math.inf, -math.inf):
        fill = torch.iinfo(dtype).min if fill < 0 else torch.iinfo(dtype).max
    masked = g.op("Where", mask, sh._unsqueeze_helper(g, xt, [0]), g.op("Constant", value_t=torch.tensor(fill, dtype=dtype)))
    return masked, inverse, perm


def _onnx_cummax(g: Any, x: Any, dim: Any) -> tuple[Any, Any]:
    """``torch.cummax``: unrolled over a dimension of static size; over a dynamic one (the time axis of a one-step
    graph) a masked ReduceMax over an ``[n, n]`` prefix mask. Indices: the last maximum, torch's choice on ties."""
    from torch.onnx import symbolic_helper as sh

    dim = sh._get_const(dim, "i", "dim")
    n = _static_size(x, dim)
    if n is None:
        masked, inverse, _ = _masked_prefix(g, x, dim, -math.inf, "aten::cummax")
        values = g.op("ReduceMax", masked, axes_i=[1], keepdims_i=0)
        indices = g.op("ArgMax", masked, axis_i=1, keepdims_i=0, select_last_index_i=1)
        return g.op("Transpose", values, perm_i=inverse), g.op("Transpose", indices, perm_i=inverse)
    cur = _slice(g, x, 0, dim)
    idx = g.op("ConstantOfShape", g.op("Shape", cur), value_t=torch.tensor([0], dtype=torch.int64))
    values, indices = [cur], [idx]
    for i in range(1, n):
        xi = _slice(g, x, i, dim)
        take = g.op("GreaterOrEqual", xi, cur)
        cur = g.op("Max", cur, xi)
        idx = g.op("Where", take, g.op("Constant", value_t=torch.tensor(i, dtype=torch.int64)), idx)
        values.append(cur)
        indices.append(idx)
    if n == 1:
        return values[0], indices[0]
    return g.op("Concat", *values, axis_i=dim), g.op("Concat", *indices, axis_i=dim)


def _onnx_cumprod(g: Any, x: Any, dim: Any, dtype: Any = None) -> Any:
    """``torch.cumprod``: unrolled over a dimension of static size, else a masked ReduceProd (prefix mask)."""
    from torch.onnx import symbolic_helper as sh

    dim = sh._get_const(dim, "i", "dim")
    n = _static_size(x, dim)
    if n is None:
        masked, inverse, _ = _masked_prefix(g, x, dim, 1.0, "aten::cumprod")
        return g.op("Transpose", g.op("ReduceProd", masked, axes_i=[1], keepdims_i=0), perm_i=inverse)
    cur = _slice(g, x, 0, dim)
    out = [cur]
    for i in range(1, n):
        cur = g.op("Mul", cur, _slice(g, x, i, dim))
        out.append(cur)
    return out[0] if n == 1 else g.op("Concat", *out, axis_i=dim)


def _onnx_unfold(g: Any, x: Any, dimension: Any, size: Any, step: Any) -> Any:
    """``Tensor.unfold`` as one Gather with window indices computed from the input's runtime shape."""
    from torch.onnx import symbolic_helper as sh

    rank = sh._get_tensor_rank(x)
    if rank is None:
        raise ExportError("aten::unfold of a tensor of unknown rank", op="aten::unfold", fmt="onnx")
    dim = sh._get_const(dimension, "i", "dimension") % rank
    step = sh._get_const(step, "i", "step")
    c = lambda v: g.op("Constant", value_t=torch.tensor(v, dtype=torch.int64))  # noqa: E731
    const_size = sh._maybe_get_const(size, "i")
    size_v = c(int(const_size)) if not sh._is_value(const_size) else g.op("Cast", size, to_i=7)  # 7: INT64
    if sh._is_value(const_size):
        size_v = g.op("Reshape", size_v, c([]))  # a scalar
    n = g.op("Gather", g.op("Shape", x), c(dim), axis_i=0)
    n_win = g.op("Add", g.op("Div", g.op("Sub", n, size_v), c(step)), c(1))
    starts = g.op("Mul", g.op("Range", c(0), n_win, c(1)), c(step))
    offsets = sh._unsqueeze_helper(g, g.op("Range", c(0), size_v, c(1)), [0])  # [1, size]
    index = g.op("Add", sh._unsqueeze_helper(g, starts, [1]), offsets)  # [W, size]
    out = g.op("Gather", x, index, axis_i=dim)  # x.shape[:dim] + [W, size] + x.shape[dim+1:]
    if dim == rank - 1:
        return out
    perm = list(range(dim + 1)) + list(range(dim + 2, rank + 1)) + [dim + 1]
    return g.op("Transpose", out, perm_i=perm)


def _onnx_log_sigmoid(g: Any, x: Any) -> Any:
    """``log σ(x) = -softplus(-x)``: the built-in ``Log(Sigmoid(x))`` underflows to -inf below x = -15 or so."""
    return g.op("Neg", g.op("Softplus", g.op("Neg", x)))


def _onnx_eye(g: Any, *args: Any) -> Any:
    """``torch.eye`` of any dtype (onnxruntime's EyeLike has no bool kernel): a float EyeLike, then Cast."""
    from torch.onnx import symbolic_helper as sh
    from torch.onnx._internal.torchscript_exporter import _type_utils

    n, m, dtype = (args[0], args[0], args[1]) if len(args) == 5 else (args[0], args[1], args[2])

    def as_1d(v: Any) -> Any:
        const = sh._maybe_get_const(v, "i")
        if not sh._is_value(const):
            return g.op("Constant", value_t=torch.tensor([int(const)], dtype=torch.int64))
        return g.op("Reshape", g.op("Cast", v, to_i=7), g.op("Constant", value_t=torch.tensor([1])))

    shape = g.op("Concat", as_1d(n), as_1d(m), axis_i=0)
    eye = g.op("EyeLike", g.op("ConstantOfShape", shape, value_t=torch.tensor([0.0])))
    code = sh._maybe_get_const(dtype, "i")
    if code is None or sh._is_value(code):
        return eye
    return g.op("Cast", eye, to_i=_type_utils.JitScalarType(int(code)).onnx_type())


_ONNX_SYMBOLICS = {"aten::cummax": _onnx_cummax, "aten::cumprod": _onnx_cumprod, "aten::unfold": _onnx_unfold,
                   "aten::log_sigmoid": _onnx_log_sigmoid, "aten::eye": _onnx_eye}


class _onnx_symbolics:
    """Registers :data:`_ONNX_SYMBOLICS` for the duration of one export."""

    def __enter__(self) -> None:
        for name, fn in _ONNX_SYMBOLICS.items():
            torch.onnx.register_custom_op_symbolic(name, fn, ONNX_OPSET)

    def __exit__(self, *exc: Any) -> None:
        for name in _ONNX_SYMBOLICS:
            torch.onnx.unregister_custom_op_symbolic(name, ONNX_OPSET)


# -- export ------------------------------------------------------------------------------------------------------
def _check_destination(path: Path) -> None:
    if path.exists() and path.is_dir():
        raise ConfigError(f"export path {str(path)!r} is a directory; give a file name (e.g. {path / 'policy.onnx'})")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"export path {str(path)!r}: {str(parent)!r} is not a directory")
            break


_ONNX_DIFFERENT_OPS = {
    "aten::sort": "torch's CPU sort orders tied values differently from ONNX's TopK (which keeps them in index "
                  "order), so ties (e.g. the DNC's equal slot usages after a reset) would pick other slots",
    "aten::argsort": "torch's CPU argsort orders tied values differently from ONNX's TopK (index order)",
}
"""Ops ONNX can express but not reproduce exactly: an export to ONNX of a graph holding one is refused."""


def _check_onnx_ops(traced: Any, name: str) -> None:
    kinds = {node.kind() for node in traced.inlined_graph.nodes()}
    for op, why in _ONNX_DIFFERENT_OPS.items():
        if op in kinds:
            raise ExportError(f"memory core {name!r} cannot be exported to ONNX (op {op}): {why}; export it with "
                              "format='torchscript' instead", core=name, op=op, fmt="onnx")


def _op_from(exc: BaseException) -> str | None:
    m = re.search(r"'?(aten::[A-Za-z0-9_.]+|prim::[A-Za-z0-9_]+)'?", str(exc))
    return m.group(1) if m else None


def export_agent(agent: Any, path: str | Path, format: str = "onnx", *, deterministic: bool = True,
                 batch_size: int | None = None, verify_steps: int = 12) -> ExportSpec:
    """Export ``agent``'s acting policy to ``path`` with its sidecar ``path + ".json"`` (see the module docstring).

    Args:
        agent: a :class:`~tracerl.TraceRL` (PPO, A2C, REINFORCE) or off-policy (SAC, TD3, R2D2) agent.
        path: the model file to write (parent directories are created; the write is atomic).
        format: ``"onnx"`` or ``"torchscript"``.
        deterministic: the mode of the action distribution (True) or a sample drawn from a ``noise`` input
            (False, PPO agents only).
        batch_size: None (default): the batch dimension is dynamic; an int: the graph works for that batch size
            only (the sidecar's shapes are numbers; ONNX then unrolls ``cummax`` / ``cumprod`` instead of masking).
        verify_steps: steps of the check of the exported graph against the policy in PyTorch (at a batch size
            other than the traced one, with random episode starts); at least 2.

    Returns:
        The :class:`ExportSpec` written to the sidecar.

    Raises:
        ConfigError: an unknown format, a path that is a directory or under a file, ``deterministic=False`` for an
            off-policy agent, ``verify_steps`` < 2.
        ExportError: the core cannot be exported to this format (it acts randomly, an op is missing in ONNX, or
            the traced graph does not reproduce the policy), naming the core (and the op when known).
        OSError: the file cannot be written.
    """
    if format not in EXPORT_FORMATS:
        raise ConfigError(f"unknown export format {format!r}; valid: {', '.join(EXPORT_FORMATS)}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ConfigError(f"batch_size must be None (dynamic) or an int >= 1, got {batch_size!r}")
    if isinstance(verify_steps, bool) or not isinstance(verify_steps, int) or verify_steps < 2:
        raise ConfigError(f"verify_steps must be an int >= 2, got {verify_steps!r}")
    path = Path(path)
    _check_destination(path)
    from .algos.offpolicy_learner import OffPolicyLearner

    if isinstance(agent.learner, OffPolicyLearner) and not deterministic:
        raise ConfigError(f"deterministic=False: the stochastic export takes its noise as an input for PPO action "
                          f"heads only; algo={agent.algo!r} exports its deterministic action")
    from .algos.nec import EpisodicLearner

    if isinstance(agent.learner, EpisodicLearner):
        raise ExportError(f"algo={agent.algo!r} acts by a nearest-neighbour lookup in its DND, whose contents "
                          "change while it learns; export is for network policies (PPO family, SAC, TD3, R2D2, DRQN)",
                          core=str(agent.policy_config.memory), fmt=format)
    name = str(agent.policy_config.memory)
    if str(agent.device) != "cpu":
        raise ConfigError(f"export traces on the CPU; load the agent with device='cpu' (it is on {agent.device})")
    step = _PolicyStep(agent, deterministic)
    # An example batch of 2 in which one row starts an episode and the other continues, so any Python branch
    # on "some row starts" is traced on the path that handles both.
    example = _example(agent, step, np.random.default_rng(0), batch_size or 2)
    spec = _build_spec(agent, step, example, format, path.name, batch_size)
    _check_acting_is_deterministic(step, spec, agent.observation_space, name)
    in_names = [t.name for t in spec.inputs]
    out_names = [t.name for t in spec.outputs]
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python values; the verification below decides
        try:
            with torch.no_grad():
                traced = torch.jit.trace(step, example, check_trace=False)
        except Exception as exc:  # noqa: BLE001 - any tracing failure is this core's
            raise ExportError(f"memory core {name!r} cannot be traced ({type(exc).__name__}: {exc})", core=name,
                              op=_op_from(exc)) from exc
        if format == "torchscript":
            torch.jit.save(traced, buffer)
        else:
            _check_onnx_ops(traced, name)
            try:
                with _onnx_symbolics():
                    torch.onnx.export(step, example, buffer, dynamo=False, input_names=in_names, output_names=out_names,
                                      opset_version=ONNX_OPSET,
                                      dynamic_axes=None if batch_size else {n: {0: "batch"} for n in in_names + out_names})
            except ExportError as exc:
                exc.core = name
                fixed = "" if batch_size else "pass batch_size=N for a graph of a fixed batch size, or "
                raise ExportError(f"memory core {name!r} cannot be exported to ONNX: {exc}; {fixed}export it with "
                                  "format='torchscript' instead", core=name, op=exc.op, fmt="onnx") from exc
            except Exception as exc:  # noqa: BLE001 - an op ONNX lacks, or an exporter limitation
                op = _op_from(exc)
                raise ExportError(
                    f"memory core {name!r} cannot be exported to ONNX" + (f" (op {op})" if op else "")
                    + f": {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}; "
                    "export it with format='torchscript' instead", core=name, op=op, fmt="onnx") from exc
    data = buffer.getvalue()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.load's deprecation notice
        spec.verified = _verify(step, spec, data, format, agent.observation_space, verify_steps, name, batch_size or 3)
    atomic_write_bytes(path, data)
    atomic_write_bytes(sidecar_path(path), (json.dumps(spec.to_json(), indent=1) + "\n").encode())
    return spec


def _example(agent: Any, step: _PolicyStep, gen: np.random.Generator, B: int) -> tuple[Tensor, ...]:
    """The example input the graph is traced with: ``B`` rows, the first starting an episode, the others (if any)
    continuing, so a Python branch on "some row starts" is traced on the path that handles both."""
    obs = [torch.from_numpy(np.ascontiguousarray(a, dtype=_NP_DTYPES[leaf.dtype]))
           for leaf, a in zip(step.pre.leaves, _sample_obs(agent.observation_space, B, gen))]
    starts = torch.arange(B) == 0
    init = {f"memory.{k}": getattr(step, f"init_{k}").expand(B, *getattr(step, f"init_{k}").shape[1:]).clone()
            for k in step.core_keys}
    if step.use_prev_action:
        init["prev_action"] = torch.zeros((B, *step.action_shape), dtype=step.action_dtype)
    rest: list[Tensor] = [init[k] for k in step.state_keys]
    if step.use_prev_reward:
        rest.append(torch.zeros(B))
    if not step.deterministic:
        shape = step.noise_shape()
        assert shape is not None
        rest.append(torch.full((B, *shape), 0.5))
    return (*obs, starts, *rest)


def _verify(step: _PolicyStep, spec: ExportSpec, data: bytes, fmt: str, obs_space: gym.Space, steps: int,
            name: str, batch: int) -> dict[str, Any]:
    """Run the exported graph against the policy (random starts); ExportError when they differ."""
    reference = _rollout(_torch_runner(step, spec), spec, obs_space, batch, steps, seed=7)
    if fmt == "torchscript":
        loaded = torch.jit.load(io.BytesIO(data))
        runner = _torch_runner(loaded, spec)
        runtime = f"torch.jit {torch.__version__}"
    else:
        try:
            import onnxruntime as ort
        except ImportError:
            return {"steps": 0, "note": "onnxruntime is not installed: the ONNX graph was not run"}
        runtime = f"onnxruntime {ort.__version__}"
    try:
        if fmt != "torchscript":  # onnxruntime checks the graph's types when it loads it
            runner = _onnx_runner(ort.InferenceSession(data, providers=["CPUExecutionProvider"]), spec)
        got = _rollout(runner, spec, obs_space, batch, steps, seed=7)
    except Exception as exc:  # noqa: BLE001 - the runtime rejects the graph
        raise ExportError(f"memory core {name!r}: the exported {fmt} graph fails to run in {runtime} "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
                          core=name, op=_op_from(exc), fmt=fmt) from exc
    diff = _max_diff(reference, got)
    if not diff <= VERIFY_TOLERANCE:
        raise ExportError(f"memory core {name!r}: the exported {fmt} graph does not reproduce the policy (largest "
                          f"difference {diff:.3g} over {steps} steps at batch {batch}, tolerance {VERIFY_TOLERANCE}); "
                          "tracing froze a data-dependent branch or the batch size"
                          + ("; try format='torchscript'" if fmt == "onnx" else ""), core=name, fmt=fmt)
    return {"steps": steps, "batch": batch, "max_abs_diff": diff, "tolerance": VERIFY_TOLERANCE, "runtime": runtime}


def _onnx_runner(session: Any, spec: ExportSpec) -> Callable[[dict[str, np.ndarray]], list[np.ndarray]]:
    names = [t.name for t in spec.outputs]

    def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return list(session.run(names, {t.name: feeds[t.name] for t in spec.inputs}))
    return run


class OnnxPolicy:
    """Runs an exported ONNX policy in onnxruntime and carries its state (what the README's example does)::

        policy = OnnxPolicy("policy.onnx")
        state = policy.initial_state(n_envs)
        action, value, state = policy.step(obs, episode_start, state)

    ``obs`` is the observation array (a dict of arrays named by the observation inputs for Dict / Tuple spaces).
    """

    def __init__(self, path: str | Path) -> None:
        import onnxruntime as ort

        self.spec = read_export_spec(path)
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self._runner = _onnx_runner(self.session, self.spec)

    def initial_state(self, batch_size: int) -> dict[str, np.ndarray]:
        """The state inputs of ``batch_size`` fresh rows."""
        return self.spec.initial_state(batch_size)

    def step(self, obs: Any, episode_start: Any, state: dict[str, np.ndarray], prev_reward: Any = None,
             noise: Any = None) -> tuple[np.ndarray, np.ndarray | None, dict[str, np.ndarray]]:
        """``(action, value or None, next state)`` for a batch."""
        feeds = dict(state)
        obs_inputs = [t for t in self.spec.inputs if t.role == "observation"]
        if len(obs_inputs) == 1 and not isinstance(obs, dict):
            obs = {obs_inputs[0].name: obs}
        for t in obs_inputs:
            feeds[t.name] = np.ascontiguousarray(obs[t.name], dtype=_NP_DTYPES[t.dtype])
        feeds["episode_start"] = np.asarray(episode_start, dtype=np.bool_)
        B = feeds["episode_start"].shape[0]
        for t in self.spec.inputs:
            if t.role == "prev_reward":
                feeds[t.name] = np.zeros(B, np.float32) if prev_reward is None else np.asarray(prev_reward, np.float32)
            elif t.role == "noise":
                if noise is None:
                    raise ValueError("this policy was exported in its stochastic form: pass noise=")
                feeds[t.name] = np.asarray(noise, np.float32)
        outs = self._runner(feeds)
        n_fixed = len(self.spec.outputs) - len(self.spec.state)
        value = outs[1] if n_fixed == 2 else None
        return outs[0], value, {s.input: outs[n_fixed + j] for j, s in enumerate(self.spec.state)}
