"""What SAC, TD3 and R2D2 share: stored states equal the states recomputed from the episode, the burn-in never
gets gradient, seed 003's flags, config validation, TraceRL integration and exact checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tracerl import TraceRL
from tracerl.algos.offpolicy import actor_mask, batch_state, unroll, unroll_target
from tracerl.algos.offpolicy_learner import OffPolicyLearner
from tracerl.algos.sac import SACConfig
from tracerl.errors import ConfigError

CUE = {"delay": 5, "difficulty": 1}
CW = {"horizon": 3, "episode_length": 12}


def _r2d2(memory="gru", **kw):
    base = dict(env="tracerl/CueDelay-v0", env_kwargs={"delay": 12, "difficulty": 1}, algo="r2d2", memory=memory, seed=0, verbose=0, n_envs=3,
                learning_starts=10**9, buffer_size=3000, seq_len=4, burn_in=4, state_stride=2, hidden_size=8,
                use_prev_action=True, use_prev_reward=True)
    base.update(kw)
    return TraceRL(**base)


def _episode_rows(rp, env, brow):
    """Rows of the episode of ``brow`` from its first step up to (excluding) ``brow``."""
    t = int(rp.step[env, brow])
    return [(brow - t + j) % rp.C for j in range(t)]


@pytest.mark.parametrize("memory,kw", [("gru", {}), ("lstm", {}), ("transformer", {"memory_kwargs": {"window": 3}}),
                                       ("mlp", {})])
def test_stored_state_equals_the_state_recomputed_from_the_episode_at_insertion_time(memory, kw):
    agent = _r2d2(memory, **kw)
    agent.learn(240)  # no gradient step (learning_starts is never reached): the network is the one that acted
    rp, torso = agent.replay, agent.algorithm.q_torso
    batch = rp.sample(48)
    spec = torso.core.state_spec()
    checked_mid_episode = 0
    for i in range(batch.N):
        env, row = batch.index[i]
        burn = min(rp.burn_in, int(rp.step[env, row]))
        brow = (row - burn) % rp.C
        rows = _episode_rows(rp, env, brow)
        state = torso.initial_state(1)
        if rows:
            checked_mid_episode += 1
            e = np.full(len(rows), env)
            x = torch.as_tensor(rp.obs[e, rows])[:, None]
            start = torch.zeros(len(rows), 1, dtype=torch.bool)
            start[0] = True
            pa = torch.as_tensor(rp.prev_action[e, rows])[:, None]
            pr = torch.as_tensor(rp.prev_reward[e, rows])[:, None]
            with torch.no_grad():
                _, state = torso(x, state, start, pa, pr)
        stored = batch_state(batch, "q")
        assert set(stored) == set(spec)
        for name in spec:
            torch.testing.assert_close(stored[name][i:i + 1], state[name], rtol=1e-5, atol=1e-6)
    assert checked_mid_episode > 5


def test_unrolling_a_window_from_its_stored_state_reproduces_the_acting_features():
    """Replaying a window whose burn-in starts at the episode's first step gives the features the agent computed
    while acting, step for step (checked on the greedy actions it took with epsilon = 0)."""
    agent = _r2d2(epsilon=0.0, burn_in=0, seq_len=5, state_stride=5, learning_starts=0, train_freq=10**6)
    agent.learn(150)
    batch = agent.replay.sample(32)
    q = agent.algorithm.q_head(unroll(agent.algorithm.q_torso, batch, batch_state(batch, "q"), grad=False))
    greedy = q.argmax(-1)
    steps = batch.has_action[batch.burn_in:]
    assert steps.sum() > 50
    assert torch.equal(greedy[steps], batch.action[batch.burn_in:][steps])


def test_burn_in_rows_get_no_gradient_and_training_rows_do():
    agent = _r2d2(burn_in=4, seq_len=4, state_stride=4)
    agent.learn(300)
    batch = agent.replay.sample(16)
    batch.obs.requires_grad_(True)
    h = unroll(agent.algorithm.q_torso, batch, batch_state(batch, "q"), grad=True)
    h.sum().backward()
    g = batch.obs.grad.abs().sum(-1)
    assert torch.all(g[: batch.burn_in] == 0)
    assert torch.all(g[batch.burn_in:][batch.valid[batch.burn_in:]] > 0)


def test_targets_without_the_first_step_start_one_row_later_from_a_fresh_state():
    agent = _r2d2(burn_in=2, seq_len=4, state_stride=2)
    agent.learn(300)
    batch = agent.replay.sample(16)
    torso = agent.algorithm.target_torso
    with_first = unroll_target(torso, batch, batch_state(batch, "q"), True)
    without = unroll_target(torso, batch, batch_state(batch, "q"), False)
    assert torch.all(without[0] == 0)
    mid = batch.step0 > 0  # windows that do not start at the episode's first step see less history without it
    assert not torch.allclose(with_first[1:, mid], without[1:, mid])


def test_mask_non_terminal_keeps_only_the_last_training_step_of_each_window():
    train = torch.tensor([[1, 1, 0], [1, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=torch.bool)
    m = actor_mask(train, True)
    assert m.tolist() == [[False, False, False], [False, True, False], [True, False, False], [False, False, False]]
    assert torch.equal(actor_mask(train, False), train)


@pytest.mark.parametrize("field,value,match", [
    ("seq_len", 0, r"SACConfig.seq_len=0 is invalid: must be an int in \[1, 100000\]"),
    ("batch_size", -2, r"batch_size=-2 is invalid"),
    ("burn_in", 3, r"burn_in=3 is invalid: must be a multiple of state_stride=2"),
    ("buffer_size", 40, r"buffer_size=40 is invalid: it gives 5 rows per env for n_envs=8, but one window is "
                        r"burn_in \+ seq_len \+ lookahead = 9 rows"),
    ("gamma", 1.5, r"gamma=1.5 is invalid: must be a finite number in \[0, 1\]"),
    ("tau", 0.0, r"tau=0.0 is invalid"),
    ("nominal_seq_len_prob", 2.0, r"nominal_seq_len_prob=2.0 is invalid"),
])
def test_invalid_configs_name_the_field_value_and_range(field, value, match):
    kw = {"seq_len": 4, "burn_in": 4, "state_stride": 2}
    kw[field] = value
    with pytest.raises(ConfigError, match=match):
        SACConfig(**kw).validate()


def test_algorithms_reject_the_wrong_action_space_and_unknown_keywords():
    with pytest.raises(ConfigError, match="algo='td3' acts in Box"):
        TraceRL(env="tracerl/CueDelay-v0", algo="td3", verbose=0)
    with pytest.raises(ConfigError, match="algo='r2d2' acts in Discrete"):
        TraceRL(env="tracerl/CountWindow-v0", algo="r2d2", verbose=0)
    with pytest.raises(TypeError, match="unexpected keyword argument.*lam"):
        TraceRL(env="tracerl/CountWindow-v0", algo="td3", lam=0.9, verbose=0)
    with pytest.raises(ConfigError, match="her=True needs a Dict observation space"):
        TraceRL(env="tracerl/CountWindow-v0", algo="sac", her=True, verbose=0)


def test_traceRL_with_an_off_policy_algo_trains_predicts_and_evaluates():
    from tracerl.evaluation import evaluate

    agent = TraceRL(env="tracerl/CountWindow-v0", env_kwargs=CW, algo="td3", seed=0, verbose=0, n_envs=2,
                    learning_starts=20, buffer_size=400, seq_len=4, batch_size=4)
    assert type(agent) is TraceRL and isinstance(agent.learner, OffPolicyLearner)
    agent.learn(60)
    assert agent.num_timesteps == 60 and agent.algorithm.n_updates > 10
    res = evaluate(agent, "tracerl/CountWindow-v0", 4, env_kwargs=CW)
    assert len(res.returns) == 4 and np.all(res.returns <= 0)
    action, state = agent.predict(np.zeros(1, np.float32))
    assert action.shape == (1,) and -1 <= action[0] <= 1 and "prev_action" in state


@pytest.mark.parametrize("algo,env,kw,extra", [
    ("r2d2", "tracerl/CueDelay-v0", CUE, {}), ("sac", "tracerl/CountWindow-v0", CW, {}),
    ("td3", "tracerl/CountWindow-v0", CW, {}),
    # the start-of-episode rate counts each actor's steps: a resume in mid-episode must not restart the count
    ("r2d2", "tracerl/CueDelay-v0", {"delay": 7, "difficulty": 1}, {"start_epsilon": 0.9, "start_epsilon_steps": 4})])
def test_checkpoint_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path, algo, env, kw, extra):
    def make():
        return TraceRL(env=env, env_kwargs=kw, algo=algo, seed=3, verbose=0, n_envs=2, learning_starts=30,
                       buffer_size=600, seq_len=4, burn_in=2, state_stride=2, batch_size=4, hidden_size=8,
                       prioritized=True, **extra)

    straight = make().learn(120)
    first = make().learn(60)
    first.save(tmp_path / "a.tracerl")
    resumed = TraceRL.load(tmp_path / "a.tracerl", env=env)
    assert isinstance(resumed.learner, OffPolicyLearner) and resumed.replay.size == first.replay.size
    resumed.learn(60, reset_num_timesteps=False)
    assert resumed.num_timesteps == straight.num_timesteps == 120
    for name, module in straight.algorithm.modules().items():
        other = resumed.algorithm.modules()[name].state_dict()
        for k, v in module.state_dict().items():
            assert torch.equal(v, other[k]), f"{name}.{k}"
    assert np.array_equal(straight.replay.obs, resumed.replay.obs)
    assert np.array_equal(straight.replay.weight, resumed.replay.weight)


def test_loading_a_checkpoint_without_env_predicts_like_the_saved_agent(tmp_path):
    agent = TraceRL(env="tracerl/CountWindow-v0", env_kwargs=CW, algo="sac", seed=0, verbose=0, n_envs=2,
                    learning_starts=10, buffer_size=400, seq_len=4, batch_size=4)
    agent.learn(40)
    agent.save(tmp_path / "s.tracerl", include_replay=False)
    loaded = TraceRL.load(tmp_path / "s.tracerl")
    obs = np.array([[1.0], [0.0]], np.float32)
    a1, s1 = agent.predict(obs, deterministic=True)
    a2, s2 = loaded.predict(obs, deterministic=True)
    assert np.array_equal(a1, a2)
    b1, _ = agent.predict(obs, s1, np.zeros(2, bool), deterministic=True)
    b2, _ = loaded.predict(obs, s2, np.zeros(2, bool), deterministic=True)
    assert np.array_equal(b1, b2)


def test_cli_trains_checkpoints_and_resumes_an_off_policy_run(tmp_path, capsys):
    from tracerl.cli import main

    out = tmp_path / "run"
    args = ["train", "--algo", "r2d2", "--env", "tracerl/CueDelay-v0", "--env-kwargs", "delay=4", "--steps", "400",
            "--learning-starts", "100", "--n-step", "2", "--seq-len", "4", "--n-envs", "4", "--buffer-size", "800",
            "--out", str(out), "--eval-episodes", "4", "--no-progress", "--verbose", "0", "--checkpoint-every", "200"]
    assert main(args) == 0
    loaded = TraceRL.load(out / "agent.tracerl")
    assert isinstance(loaded.learner, OffPolicyLearner) and loaded.config.n_step == 2 and loaded.num_timesteps == 400
    (out / "agent.tracerl").unlink()
    ckpts = sorted((out / "checkpoints").glob("*.tracerl"))
    assert ckpts, "periodic checkpoints were written"
    ckpts[-1].unlink()  # the run "died" before its last checkpoint: resume from the one before
    assert main(["train", "--resume", str(out), "--no-progress", "--verbose", "0"]) == 0
    assert TraceRL.load(out / "agent.tracerl").num_timesteps == 400
    assert main(["train", "--algo", "ppo", "--seq-len", "4", "--steps", "10", "--out", str(tmp_path / "x")]) == 2
    assert "unexpected keyword argument(s): seq_len" in capsys.readouterr().err


@pytest.mark.parametrize("algo,env,kw", [("r2d2", "tracerl/CueDelay-v0", {"delay": 6, "difficulty": 1}),
                                         ("drqn", "tracerl/CueDelay-v0", {"delay": 6, "difficulty": 1}),
                                         ("sac", "tracerl/CountWindow-v0", CW), ("td3", "tracerl/CountWindow-v0", CW)])
def test_every_registered_memory_core_trains_with_each_off_policy_algorithm(algo, env, kw):
    from tracerl.memory import available_memories

    for memory in available_memories():
        extra: dict = {"policy_delay": 1} if algo == "td3" else {}  # every TD3 step also updates the actor
        if memory == "strategic" and algo not in ("r2d2", "drqn"):  # SAC/TD3 do not train a learned retention
            extra["memory_kwargs"] = {"learn_retention": False}
        agent = TraceRL(env=env, env_kwargs=kw, algo=algo, memory=memory, seed=0, verbose=0, n_envs=2,
                        learning_starts=16, buffer_size=400, seq_len=3, burn_in=2, state_stride=1, batch_size=3,
                        hidden_size=8, **extra)
        before = {k: v.clone() for k, v in agent.policy.state_dict().items()}
        agent.learn(30)
        assert agent.algorithm.n_updates >= 3, memory
        after = agent.policy.state_dict()
        assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point()), memory
        assert any(not torch.equal(before[k], after[k]) for k in before), f"{memory}: the acting network did not learn"


def test_sac_refuses_a_learned_retention_it_would_not_train_and_runs_with_reservoir_retention():
    small = {"max_entries": 4, "mem_dim": 8, "n_heads": 2}
    with pytest.raises(ConfigError, match="learn_retention"):
        TraceRL(env="tracerl/CountWindow-v0", env_kwargs=CW, algo="sac", memory="strategic", memory_kwargs=small,
                verbose=0)
    agent = _r2d2("strategic", memory_kwargs={"learn_retention": False, **small})
    agent.learn(200)
    assert agent.algorithm.q_torso.core.retention_explore == 1.0
    assert agent.num_timesteps >= 200


def test_r2d2_trains_the_strategic_memorys_retention_and_hindsight_losses_and_anneals_its_exploration():
    small = {"max_entries": 4, "mem_dim": 8, "n_heads": 2, "hindsight_action_dim": 2,
             "retention_explore_fraction": 0.5}
    agent = _r2d2("strategic", memory_kwargs=small, learning_starts=60, train_freq=1)
    core = agent.algorithm.q_torso.core
    scorer = {k: v.clone() for k, v in core.scorer.state_dict().items()}
    h_pred = {k: v.clone() for k, v in core.h_pred.state_dict().items()}
    agent.learn(240)
    stats = agent.last_stats
    assert "memory/usefulness_loss" in stats and "memory/hindsight_loss" in stats
    assert all(math.isfinite(v) for v in stats.values())
    assert any(not torch.equal(scorer[k], v) for k, v in core.scorer.state_dict().items())  # retention learns
    assert any(not torch.equal(h_pred[k], v) for k, v in core.h_pred.state_dict().items())  # hindsight learns
    assert core.retention_explore == 0.0  # past half of the run: annealed to retention_explore_end


def test_the_target_networks_strategic_memory_follows_the_retention_schedule_too():
    small = {"max_entries": 4, "mem_dim": 8, "n_heads": 2, "retention_explore_fraction": 1.0}
    agent = _r2d2("strategic", memory_kwargs=small, learning_starts=60, train_freq=1)
    agent.learn(120)  # exploration anneals 1 -> 0 over the whole run: the last step sets it to 1 - 117/120
    online, target = agent.algorithm.q_torso.core, agent.algorithm.target_torso.core
    assert 0.0 < online.retention_explore < 1.0
    assert target.retention_explore == online.retention_explore


@pytest.mark.parametrize("algo,env,kw", [("r2d2", "tracerl/CueDelay-v0", CUE), ("sac", "tracerl/CountWindow-v0", CW)])
def test_a_seeded_off_policy_run_does_not_depend_on_other_users_of_the_global_generator(algo, env, kw):
    def make(seed=3):
        return TraceRL(env=env, env_kwargs=kw, algo=algo, seed=seed, verbose=0, n_envs=2, learning_starts=30,
                       buffer_size=600, seq_len=4, burn_in=2, state_stride=2, batch_size=4, hidden_size=8)

    alone = make().learn(90)
    before = torch.get_rng_state()
    built = make()
    make(seed=9).learn(60)
    assert torch.equal(torch.get_rng_state(), before)  # building and training leave the global generator alone
    torch.rand(1000)
    built.learn(90)
    for name, module in alone.algorithm.modules().items():
        other = built.algorithm.modules()[name].state_dict()
        for k, v in module.state_dict().items():
            assert torch.equal(v, other[k]), f"{name}.{k}"


@pytest.mark.parametrize("algo,env,kw,extra", [
    ("r2d2", "tracerl/CueDelay-v0", CUE, {"count_bonus": 0.1, "start_epsilon": 0.5, "count_split_start": True}),
    ("sac", "tracerl/CountWindow-v0", CW, {})])
def test_evaluating_between_learn_calls_does_not_change_the_training_run(algo, env, kw, extra):
    """Stochastic predict (an exploring evaluation) draws from the acting stream and leaves the training state
    (R2D2's count table, start-of-episode counters and exploration generator) alone."""
    from tracerl.evaluation import evaluate

    def make():
        return TraceRL(env=env, env_kwargs=kw, algo=algo, seed=3, verbose=0, n_envs=2, learning_starts=30,
                       buffer_size=600, seq_len=4, burn_in=2, state_stride=2, batch_size=4, hidden_size=8, **extra)

    plain, watched = make(), make()
    plain.learn(60)
    plain.learn(60, reset_num_timesteps=False)
    watched.learn(60)
    evaluate(watched, env, 4, deterministic=False, env_kwargs=kw)
    watched.learn(60, reset_num_timesteps=False)
    for name, module in plain.algorithm.modules().items():
        other = watched.algorithm.modules()[name].state_dict()
        for k, v in module.state_dict().items():
            assert torch.equal(v, other[k]), f"{name}.{k}"
    for k, v in plain.algorithm.extra_tensors().items():
        assert torch.equal(v, watched.algorithm.extra_tensors()[k]), k
