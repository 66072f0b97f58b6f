"""The memoryless control: a feed-forward core with an empty state."""

from __future__ import annotations

import math

from torch import Tensor, nn

from .base import MemoryCore, State, StateSpec, check_inputs
from .registry import register_memory


class MLPCore(MemoryCore):
    """``y_t = MLP(x_t)``: no state, nothing carried between steps. The baseline every memory must beat."""

    stateless = True

    def __init__(self, input_dim: int, hidden_size: int = 64, num_layers: int = 1) -> None:
        super().__init__()
        if input_dim <= 0 or hidden_size <= 0 or num_layers < 0:
            raise ValueError(
                f"MLPCore needs input_dim > 0, hidden_size > 0, num_layers >= 0; got "
                f"input_dim={input_dim}, hidden_size={hidden_size}, num_layers={num_layers}"
            )
        self.input_dim = input_dim
        self.output_dim = hidden_size if num_layers > 0 else input_dim
        layers: list[nn.Module] = []
        d = input_dim
        for _ in range(num_layers):
            lin = nn.Linear(d, hidden_size)
            nn.init.orthogonal_(lin.weight, gain=math.sqrt(2))
            nn.init.zeros_(lin.bias)
            layers += [lin, nn.Tanh()]
            d = hidden_size
        self.net = nn.Sequential(*layers)

    def state_spec(self) -> StateSpec:
        return {}

    def forward(self, x: Tensor, state: State, episode_start: Tensor) -> tuple[Tensor, State]:
        check_inputs(self, x, state, episode_start)
        return self.net(x), {}


register_memory("mlp", MLPCore)
