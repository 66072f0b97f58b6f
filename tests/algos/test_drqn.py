"""DRQN (Hausknecht & Stone 2015) as R2D2's learner configured by ``DRQNConfig``: windows replayed from a zero
initial state (never from the stored state), whole-episode sequential updates on request, plain one-step DQN
targets, and its registration, CLI and learning."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch

from tracerl import TraceRL
from tracerl.algos.drqn import DRQN_SETTINGS, DRQNConfig
from tracerl.algos.offpolicy import unroll
from tracerl.algos.r2d2 import R2D2, R2D2Config
from tracerl.algos.registry import get_algo
from tracerl.evaluation import evaluate

CUE = "tracerl/CueDelay-v0"


def _agent(algo="drqn", delay=8, **kw):
    base = dict(env=CUE, env_kwargs={"delay": delay, "difficulty": 1}, algo=algo, seed=0, verbose=0, n_envs=3,
                hidden_size=8, seq_len=4, learning_starts=10**9, buffer_size=3000, batch_size=16,
                use_prev_action=True, use_prev_reward=True)
    base.update(kw)
    return TraceRL(**base)


def _noisy(batch):
    """The batch with every stored state replaced by large noise."""
    noisy = copy.copy(batch)
    gen = torch.Generator().manual_seed(1)
    noisy.state = {k: 50.0 * torch.randn(v.shape, generator=gen).to(v.dtype) for k, v in batch.state.items()}
    return noisy


def _update(algorithm, batch):
    """Loss, gradient norm and parameters after one update of a copy of ``algorithm`` on ``batch``."""
    alg = copy.deepcopy(algorithm)
    stats, _ = alg.update(batch)
    params = torch.cat([p.detach().flatten() for p in alg.q_torso.parameters()])
    return stats["loss"], stats["grad_norm"], params


@pytest.mark.parametrize("algo,kw,reads_state", [
    ("drqn", {}, False),
    ("r2d2", {"zero_initial_state": True, "burn_in": 0, "state_stride": 1}, False),
    ("r2d2", {"zero_initial_state": True, "burn_in": 2, "state_stride": 2}, False),  # burn-in from zeros
    ("r2d2", {"burn_in": 0, "state_stride": 1}, True),
    ("r2d2", {"burn_in": 2, "state_stride": 2}, True),
], ids=["drqn", "r2d2_zero_state", "r2d2_zero_state_burn_in", "r2d2", "r2d2_burn_in"])
def test_stored_states_filled_with_noise_change_r2d2s_update_but_not_a_zero_state_one(algo, kw, reads_state):
    agent = _agent(algo, **kw)
    agent.learn(300)  # fills the replay; no gradient step yet
    batch = agent.replay.sample(16)
    assert (batch.step0 > 0).sum() > 4  # windows in mid-episode, where a stored state would be used
    if not batch.state:  # DRQN's replay stores none: give the batch states of the right shape to corrupt
        spec = agent.algorithm.q_torso.core.state_spec()
        batch.state = {f"q.{k}": torch.zeros(batch.N, *s.shape, dtype=s.dtype) for k, s in spec.items()}
    loss, norm, params = _update(agent.algorithm, batch)
    loss_n, norm_n, params_n = _update(agent.algorithm, _noisy(batch))
    if reads_state:
        assert loss != loss_n and not torch.equal(params, params_n)
    else:
        assert loss == loss_n and norm == norm_n and torch.equal(params, params_n)


def test_drqn_stores_no_state_and_samples_windows_starting_at_any_step():
    agent = _agent("drqn", delay=12)
    agent.learn(300)
    assert agent.replay.states == {}
    starts = set(agent.replay.sample(128).step0.tolist())
    assert starts >= {0, 1, 2, 3, 5, 7}  # not only a stride grid: every step can begin a window
    r2d2 = _agent("r2d2", delay=12, state_stride=4)
    r2d2.learn(300)
    assert r2d2.replay.states and set(r2d2.replay.sample(128).step0.tolist()) <= {0, 4, 8}


@pytest.mark.parametrize("whole_episode", [False, True])
def test_whole_episode_mode_trains_windows_that_begin_at_episode_starts(whole_episode):
    delay = 6
    agent = _agent("drqn", delay=delay, seq_len=delay, learning_starts=60, target_update_interval=10,
                   always_sample_from_initial_state=whole_episode)
    seen: list = []
    update = agent.algorithm.update

    def recording(batch):
        seen.append((batch.step0.clone(), batch.train.sum(0).clone(), batch.episode_start[batch.burn_in].clone()))
        return update(batch)

    agent.algorithm.update = recording
    agent.learn(150)
    assert len(seen) > 10
    step0 = torch.cat([s for s, _, _ in seen])
    trained = torch.cat([t for _, t, _ in seen])
    first_row_starts = torch.cat([e for _, _, e in seen])
    if whole_episode:
        assert torch.all(step0 == 0) and torch.all(first_row_starts)
        assert (trained == delay).float().mean() > 0.8  # whole episodes (only a running one is shorter)
    else:
        assert torch.any(step0 > 0)


def test_drqn_targets_are_plain_one_step_dqn_targets():
    """``y_t = r_t + gamma max_a Qbar(h_{t+1}, a)`` (0 after termination): no value rescaling, no double Q."""
    agent = _agent("drqn", learning_starts=100, target_update_interval=7, gamma=0.9)
    agent.learn(400)
    alg, cfg = agent.algorithm, agent.config
    assert cfg.n_step == 1 and not cfg.value_rescaling and not cfg.double_q
    batch = agent.replay.sample(16)
    with torch.no_grad():
        zero = alg.target_torso.initial_state(batch.N)  # DRQN replays every window from the initial state
        q_online = alg.q_head(unroll(alg.q_torso, batch, zero, grad=False))
        q_target = alg.target_head(unroll(alg.target_torso, batch, zero, grad=False))
    assert not torch.allclose(q_online, q_target)  # the target network lags: the check can tell them apart
    y, ok = alg.targets(batch, q_online)
    checked = 0
    for i in range(batch.N):
        for t in range(y.shape[0] - 1):
            if not (batch.has_action[t, i] and batch.valid[t + 1, i]):
                continue
            assert ok[t, i]
            boot = 0.0 if batch.terminal[t + 1, i] else float(q_target[t + 1, i].max())
            assert float(y[t, i]) == pytest.approx(float(batch.reward[t, i]) + cfg.gamma * boot, rel=1e-5, abs=1e-6)
            checked += 1
    assert checked > 30


def test_double_q_is_a_switch_of_r2d2s_targets():
    agent = _agent("drqn", learning_starts=100, target_update_interval=7)
    agent.learn(400)
    alg = agent.algorithm
    batch = agent.replay.sample(32)
    with torch.no_grad():
        q_online = alg.q_head(unroll(alg.q_torso, batch, alg.window_state(batch, alg.q_torso), grad=False))
        plain, ok = alg.targets(batch, q_online)
        alg.config.double_q = True
        double, ok2 = alg.targets(batch, q_online)
    assert torch.equal(ok, ok2)
    assert torch.all(plain[ok] >= double[ok] - 1e-6)  # max over the target's values bounds any one of them
    assert torch.any(plain[ok] > double[ok] + 1e-6)


def test_drqn_is_r2d2s_algorithm_with_the_documented_settings():
    spec = get_algo("drqn")
    assert spec.algorithm is R2D2 and spec.config_class is DRQNConfig and spec.kind == "off_policy"
    assert issubclass(DRQNConfig, R2D2Config)
    drqn, r2d2 = DRQNConfig(), R2D2Config()
    differ = {f.name for f in dataclasses.fields(R2D2Config) if getattr(drqn, f.name) != getattr(r2d2, f.name)}
    assert differ <= set(DRQN_SETTINGS) and len(differ) >= 8  # (burn_in is pinned, tracerl's R2D2 default is 0)
    assert {k: getattr(drqn, k) for k in DRQN_SETTINGS} == DRQN_SETTINGS
    assert drqn.zero_initial_state and drqn.burn_in == 0 and drqn.n_step == 1 and not drqn.value_rescaling
    for name in DRQN_SETTINGS:  # the one place that states the difference names every setting
        assert name in DRQNConfig.__doc__


def test_drqn_refuses_box_actions():
    from tracerl.errors import ConfigError

    with pytest.raises(ConfigError, match="drqn"):
        TraceRL(env="tracerl/CountWindow-v0", env_kwargs={"horizon": 3, "episode_length": 12}, algo="drqn",
                verbose=0, n_envs=2, buffer_size=400)


def test_tracerl_train_algo_drqn_trains_saves_and_resumes(tmp_path):
    from tracerl.cli import main

    out = tmp_path / "run"
    args = ["train", "--algo", "drqn", "--env", CUE, "--env-kwargs", "delay=4", "--steps", "400",
            "--learning-starts", "100", "--seq-len", "4", "--n-envs", "4", "--buffer-size", "800",
            "--target-update-interval", "20", "--out", str(out), "--eval-episodes", "4", "--no-progress",
            "--verbose", "0", "--checkpoint-every", "200"]
    assert main(args) == 0
    loaded = TraceRL.load(out / "agent.tracerl")
    assert loaded.algo == "drqn" and isinstance(loaded.config, DRQNConfig) and loaded.num_timesteps == 400
    assert loaded.config.zero_initial_state and loaded.config.n_step == 1 and loaded.config.target_update_interval == 20
    assert loaded.algorithm.n_updates > 50
    assert json.loads((out / "config.json").read_text())["algo"] == "drqn"
    (out / "agent.tracerl").unlink()
    assert main(["train", "--resume", str(out), "--no-progress", "--verbose", "0"]) == 0
    assert TraceRL.load(out / "agent.tracerl").num_timesteps == 400


def test_drqn_checkpoint_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    def make():
        return _agent("drqn", delay=5, seed=3, n_envs=2, learning_starts=30, buffer_size=600, batch_size=4,
                      target_update_interval=10)

    straight = make().learn(120)
    first = make().learn(60)
    first.save(tmp_path / "a.tracerl")
    resumed = TraceRL.load(tmp_path / "a.tracerl", env=CUE)
    resumed.learn(60, reset_num_timesteps=False)
    for name, module in straight.algorithm.modules().items():
        other = resumed.algorithm.modules()[name].state_dict()
        for k, v in module.state_dict().items():
            assert torch.equal(v, other[k]), f"{name}.{k}"
    assert np.array_equal(straight.replay.obs, resumed.replay.obs)


def test_drqn_gru_learns_cue_delay_with_distractors():
    """A memoryless agent is at chance (50 %): success needs the cue remembered over the 4-step episode."""
    agent = _agent("drqn", delay=4, n_envs=8, hidden_size=32, seq_len=4, batch_size=32, gamma=0.99,
                   learning_starts=500, buffer_size=20_000, target_update_interval=50, epsilon=0.1,
                   use_prev_action=False, use_prev_reward=False)
    agent.learn(6000)
    res = evaluate(agent, CUE, 200, env_kwargs={"delay": 4, "difficulty": 1}, seed=777)
    assert res.success_rate >= 0.9
