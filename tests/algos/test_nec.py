"""NEC (Pritzel et al. 2017) as a tracerl algorithm: its lagged N-step DND writes against a reference recursion,
its gradient update, the one agent's save/load/resume with the DND's contents, clear errors, the CLI and a tiny
learning test on a memory task with recurrent keys."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from gymnasium import spaces

from checkpoint_edit import read_raw, write_rehashed
from tracerl import TraceRL
from tracerl.algos.nec import NEC, EpisodicLearner, NECConfig, episode_returns
from tracerl.algos.recurrent_nets import ActionCodec
from tracerl.algos.registry import get_algo
from tracerl.errors import CheckpointError, ConfigError
from tracerl.evaluation import evaluate
from tracerl.policies.policy import PolicyConfig

CUE = "tracerl/CueDelay-v0"


def _agent(algo="nec", delay=4, **kw):
    base = dict(env=CUE, env_kwargs={"delay": delay, "difficulty": 1}, algo=algo, memory="gru", seed=0, verbose=0,
                n_envs=2, hidden_size=8, seq_len=4, learning_starts=30, buffer_size=800, batch_size=8)
    base.update(kw)
    return TraceRL(**base)


def _algorithm(n_envs: int, **cfg) -> NEC:
    config = NECConfig(n_envs=n_envs, buffer_size=1000, **cfg)
    return NEC(3, ActionCodec(spaces.Discrete(2)), config, PolicyConfig(memory="mlp", hidden_size=4))


def _spy(alg: NEC):
    """Record the acting lookups' Q (``[B, A]`` per step), the other lookups' Q and every write."""
    acting, other, writes = [], [], []
    lookup, write = alg.dnd.q_values, alg.dnd.write

    def q_values(h, refresh=False):
        out = lookup(h, refresh)
        (acting if refresh else other).append(out.clone())
        return out

    def record(keys, actions, returns):
        writes.extend(zip(keys.clone(), actions.tolist(), returns.tolist()))
        write(keys, actions, returns)

    alg.dnd.q_values, alg.dnd.write = q_values, record
    return acting, other, writes


def _reference_return(rewards, values, t, n, gamma, end_value):
    """G_t = sum_{j<m} gamma^j r_{t+j} + gamma^m V_{t+m}, m = min(n, T - t), V_T = end_value (plain loops)."""
    T = len(rewards)
    m = min(n, T - t)
    g = 0.0
    for j in range(m):
        g += gamma**j * rewards[t + j]
    return g + gamma**m * (values[t + m] if t + m < T else end_value)


def test_episode_returns_follow_the_discounted_recursion():
    r = torch.tensor([1.0, -2.0, 0.5])
    g = episode_returns(r, 4.0, 0.9)
    assert g.tolist() == pytest.approx([1 - 2 * 0.9 + 0.5 * 0.81 + 4 * 0.729, -2 + 0.5 * 0.9 + 4 * 0.81, 0.5 + 3.6])


@pytest.mark.parametrize("ending", ["terminated", "truncated"])
def test_nec_writes_each_step_with_its_n_step_return_against_a_reference_recursion(ending):
    n, gamma = 3, 0.9
    alg = _algorithm(2, n_step=n, gamma=gamma, epsilon=0.3, match_threshold=0.0)
    gen = torch.Generator().manual_seed(0)
    alg.dnd.write(torch.randn(12, 4, generator=gen), torch.randint(0, 2, (12,), generator=gen),
                  torch.randn(12, generator=gen))  # bootstraps are not zero
    acting, other, writes = _spy(alg)
    T = 7
    feats = torch.randn(T, 2, 4, generator=gen)  # distinct keys: a write is found by its key
    rewards = torch.randn(T, 2, generator=gen).numpy()
    final = torch.randn(2, 4, generator=gen)
    # env 0 runs one episode of T steps; env 1 terminates after step 3 and after the last step
    for t in range(T):
        alg.act({"q": feats[t]})
        term = np.array([t == T - 1 and ending == "terminated", t in (3, T - 1)])
        trunc = np.array([t == T - 1 and ending == "truncated", False])
        alg.observe(rewards[t], term, trunc, final if trunc.any() else None)
    assert len(writes) == 2 * T and len(alg.pending) == 0
    boot = [q.max(-1).values for q in acting]  # max_a Q of each acting step's key
    end0 = other[-1].max(-1).values[0].item() if ending == "truncated" else 0.0  # Q of the final observation
    for b, steps, end_value in [(0, range(0, T), end0), (1, range(0, 4), 0.0), (1, range(4, T), 0.0)]:
        r = [float(rewards[t, b]) for t in steps]
        v = [float(boot[t][b]) for t in steps]
        for i, t in enumerate(steps):
            match = [w for w in writes if torch.equal(w[0], feats[t, b])]
            assert len(match) == 1, (b, t)
            assert match[0][2] == pytest.approx(_reference_return(r, v, i, n, gamma, end_value), abs=1e-5), (b, t)
    if ending == "truncated":
        assert abs(end0) > 0  # the final observation's value entered the truncated episode's returns


def test_nec_updates_fit_the_replayed_n_step_targets_and_train_the_dnd_only_with_a_dnd_learning_rate():
    def filled(dnd_learning_rate):
        # keys of the observation history only (use_prev_action=False): the figures below were set for them
        agent = _agent(learning_starts=10**9, dnd_learning_rate=dnd_learning_rate, use_prev_action=False)
        agent.learn(200)  # writes into the DND, fills the replay; no gradient step
        return agent.learner.algorithm, agent.replay.sample(8)

    alg, batch = filled(0.0)
    values, params = alg.dnd.values.clone(), [p.clone() for p in alg.torso.parameters()]
    losses = [alg.update(batch)[0]["loss"] for _ in range(60)]
    assert losses[-1] < 0.9 * losses[0]  # the embedding alone: Q stays a mix of the stored values
    assert torch.equal(alg.dnd.values, values)
    assert not all(torch.equal(p, q) for p, q in zip(params, alg.torso.parameters()))
    alg, batch = filled(0.05)
    losses = [alg.update(batch)[0]["loss"] for _ in range(60)]
    assert losses[-1] < 0.1 * losses[0]  # the neighbours' values move to the targets too


def test_nec_is_registered_with_the_episodic_learner_and_its_checkpoints_have_their_own_kind(tmp_path):
    assert get_algo("nec").learner_class is EpisodicLearner
    agent = _agent().learn(40)
    agent.save(tmp_path / "a.tracerl")
    assert read_raw(tmp_path / "a.tracerl")[2] == "tracerl.EpisodicControl"


def _same_run(a: TraceRL, b: TraceRL) -> None:
    for name, t in a.learner.algorithm.dnd.state_tensors().items():
        assert torch.equal(t, b.learner.algorithm.dnd.state_tensors()[name]), f"dnd.{name}"
    for name, module in a.learner.modules().items():
        other = b.learner.modules()[name].state_dict()
        for k, v in module.state_dict().items():
            assert torch.equal(v, other[k]), f"{name}.{k}"
    assert a.collector.stats.to_json() == b.collector.stats.to_json()


@pytest.mark.parametrize("memory", ["mlp", "gru"])
def test_nec_checkpoint_resume_is_bit_identical_to_an_uninterrupted_run(memory, tmp_path):
    def make():
        return _agent(memory=memory, delay=5, seed=3, dnd_capacity=40)  # the DNDs fill up: eviction too

    straight = make().learn(164)
    first = make().learn(82)
    assert len(first.learner.algorithm.pending) > 0  # writes were pending at the save
    first.save(tmp_path / "a.tracerl")
    resumed = TraceRL.load(tmp_path / "a.tracerl", env=CUE)
    resumed.learn(82, reset_num_timesteps=False)
    assert int(straight.learner.algorithm.dnd.size.sum()) == 80
    assert straight.learner.algorithm.n_updates == resumed.learner.algorithm.n_updates > 0
    _same_run(straight, resumed)


def test_a_loaded_nec_agent_predicts_as_the_saved_one_from_its_dnd(tmp_path):
    agent = _agent().learn(120)
    agent.save(tmp_path / "a.tracerl")
    loaded = TraceRL.load(tmp_path / "a.tracerl")
    obs = np.random.default_rng(0).normal(size=(5, 2, 3)).astype(np.float32)
    s1 = s2 = None
    for t in range(5):
        start = np.full(2, t == 0)
        a1, s1 = agent.predict(obs[t], s1, None if s1 is None else start, deterministic=True)
        a2, s2 = loaded.predict(obs[t], s2, None if s2 is None else start, deterministic=True)
        assert np.array_equal(a1, a2)
    loaded.learner.algorithm.dnd.values.zero_()  # the actions come from the loaded DND
    q = loaded.learner.algorithm.dnd.q_values(torch.randn(4, 8))
    assert torch.equal(q, torch.zeros_like(q))


@pytest.mark.faults("NEC or MFEC on a Box action space | ConfigError naming the algorithm and Discrete | none")
@pytest.mark.parametrize("algo", ["nec", "mfec"])
def test_episodic_control_on_box_actions_is_a_config_error(algo):
    with pytest.raises(ConfigError, match=f"algo='{algo}' acts in Discrete action spaces"):
        TraceRL(env="tracerl/CountWindow-v0", env_kwargs={"horizon": 3, "episode_length": 12}, algo=algo,
                verbose=0, n_envs=2, buffer_size=400)


@pytest.mark.faults("NEC config with a bad DND field (capacity 0, negative threshold) | ConfigError naming the field "
                    "| none")
@pytest.mark.parametrize("field,value", [("dnd_capacity", 0), ("match_threshold", -1.0), ("kernel_delta", 0.0),
                                         ("num_neighbours", 0), ("dnd_alpha", 0.0)])
def test_bad_nec_fields_raise_config_error_naming_them(field, value):
    with pytest.raises(ConfigError, match=field):
        _agent(**{field: value})


@pytest.mark.faults("NEC checkpoint with pending writes of an unknown action or a DND size above its capacity, or a "
                    "capacity too large to allocate | CheckpointError naming the entry, before anything is built | "
                    "none")
@pytest.mark.parametrize("entry", ["episodic.actions", "dnd.size", "meta.config.dnd_capacity"])
def test_a_corrupted_nec_checkpoint_is_refused_naming_the_entry(entry, tmp_path):
    path = tmp_path / "a.tracerl"
    _agent().learn(41).save(path)  # odd: the pending writes are not empty
    tensors, meta, kind = read_raw(path)
    if entry == "episodic.actions":
        assert tensors[entry].numel() > 0
        tensors[entry][0] = 7
    elif entry == "dnd.size":
        tensors[entry][0] = 10**9
    else:
        meta["config"]["dnd_capacity"] = 10**7
        meta["config"]["buffer_size"] = 800
        meta["policy"]["hidden_size"] = 60_000
    write_rehashed(path, tensors, meta, kind)
    with pytest.raises(CheckpointError, match=entry.replace(".", r"\.")):
        TraceRL.load(path, env=CUE)


def test_tracerl_train_algo_nec_trains_saves_and_resumes(tmp_path):
    from tracerl.cli import main

    out = tmp_path / "run"
    args = ["train", "--algo", "nec", "--memory", "gru", "--env", CUE, "--env-kwargs", "delay=4", "--steps", "200",
            "--learning-starts", "50", "--seq-len", "4", "--n-envs", "2", "--buffer-size", "800", "--batch-size",
            "8", "--dnd-capacity", "500", "--n-step", "3", "--out", str(out), "--eval-episodes", "4",
            "--no-progress", "--verbose", "0", "--checkpoint-every", "100"]
    assert main(args) == 0
    loaded = TraceRL.load(out / "agent.tracerl")
    assert loaded.algo == "nec" and isinstance(loaded.config, NECConfig) and loaded.num_timesteps == 200
    assert loaded.config.dnd_capacity == 500 and loaded.config.n_step == 3
    assert int(loaded.learner.algorithm.dnd.size.sum()) > 0 and loaded.learner.algorithm.n_updates > 50
    assert json.loads((out / "config.json").read_text())["algo"] == "nec"


def test_nec_with_recurrent_keys_learns_cue_delay_with_distractors_quickly():
    """Chance is 50 %: the cue must be remembered across the 4-step episode, so the keys must come from the GRU."""
    agent = _agent(n_envs=4, hidden_size=16, learning_starts=100, buffer_size=4000, batch_size=16, seed=0)
    agent.learn(2000)
    res = evaluate(agent, CUE, 200, env_kwargs={"delay": 4, "difficulty": 1})
    assert res.success_rate >= 0.9


@pytest.mark.faults("Export of an NEC or MFEC agent | ExportError naming the algorithm, nothing written | none")
@pytest.mark.parametrize("algo", ["nec", "mfec"])
def test_exporting_an_episodic_control_agent_is_an_export_error(algo, tmp_path):
    from tracerl.errors import ExportError

    with pytest.raises(ExportError, match=f"algo='{algo}' acts by a nearest-neighbour lookup"):
        _agent(algo).export(tmp_path / "p.onnx")
    assert list(tmp_path.iterdir()) == []


def test_recurrent_nec_replays_each_window_from_the_state_stored_with_it():
    """Windows in mid-episode start from the GRU state the actor had there (R2D2's convention): replacing the
    stored states by noise changes the update."""
    import copy

    agent = _agent(delay=8, learning_starts=10**9, seq_len=3, state_stride=3)
    agent.learn(300)
    batch = agent.replay.sample(16)
    assert (batch.step0 > 0).sum() > 4 and batch.state
    noisy = copy.copy(batch)
    noisy.state = {k: 50.0 * torch.randn(v.shape, generator=torch.Generator().manual_seed(1))
                   for k, v in batch.state.items()}
    loss = copy.deepcopy(agent.learner.algorithm).update(batch)[0]["loss"]
    assert copy.deepcopy(agent.learner.algorithm).update(batch)[0]["loss"] == loss
    assert copy.deepcopy(agent.learner.algorithm).update(noisy)[0]["loss"] != loss


@pytest.mark.parametrize("algo", ["nec", "mfec"])
def test_episodic_control_trains_on_an_env_that_truncates_episodes(algo):
    # MaskedCartPole with a cap of 3 steps truncates every episode (the pole cannot fall in 3 steps from rest);
    # the learner then computes the final observation's key from the collector's carried state
    agent = _agent(algo, env="tracerl/MaskedCartPole-v0", env_kwargs={"max_steps": 3}).learn(48)
    assert int(agent.learner.algorithm.dnd.size.sum()) > 0


def test_a_truncated_episode_bootstraps_on_the_key_of_its_final_observation():
    agent = _agent("nec", memory="mlp", use_prev_action=False, env="tracerl/MaskedCartPole-v0",
                   env_kwargs={"max_steps": 3})
    alg = agent.learner.algorithm
    seen = []
    observe = alg.observe

    def spy(reward, terminated, truncated, final_features):
        infos = agent.learner.collector.env.last[4]  # the step being observed
        seen.append((np.asarray(truncated).copy(), final_features, infos.get("final_obs")))
        observe(reward, terminated, truncated, final_features)

    alg.observe = spy
    agent.learn(12)
    truncated_steps = [(t, f, o) for t, f, o in seen if t.any()]
    assert truncated_steps
    torso = alg.torsos()["q"]
    for trunc, features, final_obs in truncated_steps:
        obs = torch.as_tensor(np.asarray(final_obs, np.float32))
        with torch.no_grad():
            expected, _ = torso(obs[None], torso.initial_state(2, "cpu"), torch.zeros(1, 2, dtype=torch.bool),
                                torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, 2))
        rows = np.flatnonzero(trunc)
        torch.testing.assert_close(features[rows], expected[0][rows])
