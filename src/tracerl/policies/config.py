"""``PolicyConfig``: how the network stack of every algorithm is built (encoder, torso, memory core; the PPO
heads' few settings), shared by the PPO family's :class:`~tracerl.policies.RecurrentActorCritic` and the off-policy
algorithms' :class:`~tracerl.policies.torso.RecurrentTorso`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ..config_checks import Range, validate_fields
from ..errors import ConfigError


@dataclass
class PolicyConfig:
    """How the network of every algorithm is built: observation encoder, previous action and reward, memory core
    (the torso, :mod:`tracerl.policies.torso`), and the PPO heads' settings (``squash``, ``log_std_init``,
    ``intrinsic_value``)."""

    memory: str = "gru"
    """Registered memory core name (``tracerl list`` shows them)."""
    hidden_size: int = 64
    """Width of the memory core's output (GRU/LSTM hidden size)."""
    num_layers: int = 1
    """Stacked layers inside the memory core."""
    encoder_hidden: tuple[int, ...] = (64,)
    """Hidden layer widths of the observation encoder MLP (empty: the flat observation goes straight in)."""
    use_prev_action: bool | None = None
    """Feed the previous action into the memory (zero at episode start). None (the default): on for every core with
    memory, off for a stateless one (``mlp``, whose fed-back action would itself be a one-step memory); the network
    resolves it when it is built (the agent's ``policy_config`` then holds True or False). The action is part of the
    history a memory policy conditions on, and a sampled action is otherwise invisible to it (R2D2 and recurrent
    model-free RL feed it too; POPGym marks the envs whose observations only make sense with it)."""
    use_prev_reward: bool = False
    """Feed the previous reward into the memory (zero at episode start)."""
    heads_read_obs: bool | None = None
    """The PPO family's action and critic heads also read the current observation (the flat preprocessed
    observation, an image as its CNN features), beside the memory's output: a linear path from what is seen now to
    the action, so the memory has only to carry what the observation lacks (on Concentration, where the policy must
    not pick cards it can see are face up, a GRU 64 bottleneck otherwise has to pass all 52 of them through). None
    (the default): on for every core with memory, off for a stateless one (``mlp``, whose output is already a
    function of the observation alone); the network resolves it when it is built. The off-policy algorithms' heads
    read the torso's features only (None means off there; True is a ConfigError)."""
    squash: bool | None = None
    """Box actions of the PPO family: tanh-squash the Gaussian into the action bounds (True) or clip its samples to
    them (False). None (the default): squash when every bound of the Box is finite, clip otherwise; the network
    resolves it when it is built. Squashing keeps the whole distribution inside the bounds, so no probability mass
    piles up on a bound where clipping gives the mean no gradient (on POPGym's PositionOnlyPendulum, 5 seeds at 200k
    steps: 0.80 against 0.68 clipped, both at 3e-3). The off-policy algorithms ignore it (SAC's actor always squashes)."""
    log_std_init: float = 0.0
    """Box actions: initial log standard deviation of the Gaussian."""
    memory_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments for the memory core's constructor."""
    intrinsic_value: bool = False
    """Add a second critic head for an intrinsic return (RND; Burda et al. 2018 keep the two returns apart)."""
    image_encoder: Literal["auto", "cnn", "flat"] = "auto"
    """Image observations (uint8 Box 0-255, HWC or CHW, 1/3/4 channels; also inside Dict/Tuple; scaled to [0, 1]):
    "auto" a small CNN per image, "cnn" also for other 3-D Boxes with a channel axis, "flat" pixels into the MLP."""
    core_input: Literal["declared", "features"] = "declared"
    """What the memory core reads: what it declares (MemoryCore.input_form: encoded features for most cores, raw
    steps for the strategic memory), or encoded features whatever it declares (how agents were built before cores
    declared their input; checkpoints written then load with it)."""

    _field_ranges = {  # valid values per field, checked with the annotations by tracerl.config_checks
        "hidden_size": Range(1, 65536), "num_layers": Range(1, 64), "encoder_hidden": Range(1, 65536),
        "log_std_init": Range(-20, 20),
    }

    def __post_init__(self) -> None:
        validate_fields(self)

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid field, its value and the valid range."""
        validate_fields(self)
        if self.hidden_size <= 0:
            raise ConfigError(f"hidden_size must be > 0, got {self.hidden_size}")
        if self.num_layers <= 0:
            raise ConfigError(f"num_layers must be > 0, got {self.num_layers}")
        if any(h <= 0 for h in self.encoder_hidden):
            raise ConfigError(f"encoder_hidden widths must be > 0, got {self.encoder_hidden}")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["encoder_hidden"] = list(self.encoder_hidden)
        return d


__all__ = ["PolicyConfig"]
