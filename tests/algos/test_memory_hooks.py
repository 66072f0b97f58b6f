"""Algorithms read a core's declared training hooks (``MemoryCore.training_inputs``, ``set_training_progress``,
``memory_losses_required``, ``training_options``) and nothing else: a core defined in this file gets exactly what
it declares from PPO and R2D2, with no name or attribute of the strategic memory involved."""

from __future__ import annotations

import pytest
import torch

from tracerl import TraceRL
from tracerl.algos.offpolicy import unroll_traced
from tracerl.errors import ConfigError
from tracerl.memory import TrainingInputs
from tracerl.memory.rnn import GRUCore

CUE = {"delay": 3, "difficulty": 1}


class DeclaringGRU(GRUCore):
    """A GRU that wants every training input and has a schedule; it records what the trainer hands it."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[dict[str, tuple[tuple[int, ...], torch.dtype]]] = []
        self.progress: list[float] = []

    def training_inputs(self) -> TrainingInputs:
        return TrainingInputs(reward="r", action="a", episode_end="e", step_mask="m")

    def set_training_progress(self, progress: float) -> None:
        self.progress.append(progress)

    def forward_replay(self, x, state, episode_start, replay):
        if replay is not None and torch.is_grad_enabled():
            wanted = {k: (tuple(v.shape), v.dtype) for k, v in replay.items() if k in ("r", "a", "e", "m")}
            if wanted:
                self.seen.append(wanted)
        return super().forward_replay(x, state, episode_start, replay)

    def memory_losses(self, trace, mask):  # a (zero-weight) loss of its own, so R2D2 runs its traced pass
        return {"memory/test_loss": (mask.sum() * 0.0, 0.0)}


def test_ppo_hands_a_core_exactly_the_training_inputs_it_declares_and_its_training_progress():
    core = DeclaringGRU(8, hidden_size=8)
    agent = TraceRL(env="tracerl/CueDelay-v0", env_kwargs=CUE, memory=core, seed=0, verbose=0, n_envs=2, n_steps=8,
                    batch_size=16, n_epochs=1)
    agent.learn(48)
    assert core.seen, "the update passed no training inputs"
    for got in core.seen:
        T, B = got["r"][0]
        assert set(got) == {"r", "a", "e", "m"}
        assert got["a"][0] == (T, B, 2)  # Discrete(2) actions as the network encodes them (one-hot)
        assert got["e"] == ((T, B), torch.bool) and got["m"] == ((T, B), torch.bool)
    assert core.progress == [0.0, 16 / 48, 32 / 48]  # before every rollout, from the step counter
    assert "memory/test_loss" in agent.last_stats


def test_r2d2_hands_a_core_exactly_the_training_inputs_it_declares_and_every_core_its_progress():
    core = DeclaringGRU(8, hidden_size=8)
    agent = TraceRL(env="tracerl/CueDelay-v0", env_kwargs=CUE, algo="r2d2", memory=core, seed=0, verbose=0,
                    n_envs=2, learning_starts=20, buffer_size=400, seq_len=3, burn_in=2, state_stride=1, batch_size=3)
    agent.learn(40)
    online, target = agent.algorithm.q_torso.core, agent.algorithm.target_torso.core
    assert online.seen, "the update passed no training inputs"
    for got in online.seen:
        T, N = got["r"][0]
        assert set(got) == {"r", "a", "e", "m"} and got["a"][0] == (T, N, 2)
        assert got["e"][1] == torch.bool and got["m"] == ((T, N), torch.bool)
    assert len(online.progress) == len(target.progress) == 20  # every vector step, online and target alike
    assert "memory/test_loss" in agent.last_stats


def test_an_algorithm_that_does_not_train_a_cores_own_losses_refuses_a_core_that_needs_them():
    class NeedsItsLosses(GRUCore):
        def memory_losses_required(self):
            return "its gate is trained only by its own loss; pass frozen=True"

    with pytest.raises(ConfigError, match="algo='sac'.*its gate is trained only by its own loss; pass frozen=True"):
        TraceRL(env="tracerl/CountWindow-v0", env_kwargs={"horizon": 3, "episode_length": 12}, algo="sac",
                memory=NeedsItsLosses(8, hidden_size=8), verbose=0)
    TraceRL(env="tracerl/CueDelay-v0", env_kwargs=CUE, algo="r2d2", memory=NeedsItsLosses(8, hidden_size=8),
            verbose=0)  # R2D2 trains them


def test_memory_options_are_set_only_on_a_core_that_declares_them():
    with pytest.raises(ConfigError, match="memory_learn_retention=True.*declares no 'learn_retention' option"):
        TraceRL(env="tracerl/CueDelay-v0", env_kwargs=CUE, memory="gru", memory_learn_retention=True, verbose=0)

    class Tunable(GRUCore):
        training_options = frozenset({"retention_coef"})
        retention_coef = 1.0

    agent = TraceRL(env="tracerl/CueDelay-v0", env_kwargs=CUE, memory=Tunable(8, hidden_size=8),
                    memory_retention_coef=0.25, verbose=0)
    assert agent.policy.core.retention_coef == 0.25


def test_r2d2_keeps_padding_rows_out_of_the_strategic_memorys_novelty_statistics():
    """The strategic memory declares a step mask; R2D2 gives it the window's real rows, so rows of other episodes
    (zero padding) no longer enter the running input moments of its "novelty" exploration."""
    agent = TraceRL(env="tracerl/CueDelay-v0", env_kwargs={"delay": 2, "difficulty": 1}, algo="r2d2",
                    memory="strategic", seed=0, verbose=0, n_envs=2, learning_starts=10**9, buffer_size=600,
                    seq_len=6, burn_in=0, state_stride=1, hidden_size=8,
                    memory_kwargs={"max_entries": 4, "mem_dim": 8, "n_heads": 2,
                                   "retention_explore_mode": "novelty"})
    agent.learn(120)
    torso = agent.algorithm.q_torso
    batch = agent.replay.sample(32)
    real = int(batch.valid.sum())
    assert real < batch.valid.numel(), "the sampled windows hold padding rows"
    before = float(torso.core.input_count)
    unroll_traced(torso, batch, agent.algorithm.window_state(batch, torso))
    assert float(torso.core.input_count) - before == real
