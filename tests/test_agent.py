"""TraceRL: the seed-001 API, predict with state, save/load, resume, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from helpers import DictObsEnv, ScriptedEnv
from tracerl import TraceRL
from tracerl.envs import CueDelay
from tracerl.errors import CheckpointError, ConfigError, NonFiniteError, UnsupportedSpaceError
from tracerl.io.components import Walk

SMALL = dict(n_envs=4, n_steps=16, batch_size=32, hidden_size=16, verbose=0)


def _cue_agent(**kw):
    args = dict(env="tracerl/CueDelay-v0", env_kwargs={"delay": 4, "difficulty": 1}, memory="gru", seed=3, **SMALL)
    args.update(kw)
    return TraceRL(**args)


def test_seed_api_keywords_are_accepted():
    env = CueDelay(delay=4, difficulty=0)
    agent = TraceRL(policy_class=None, env=env, memory="gru", device="cpu", verbose=0, lam=0.95, gamma=0.99,
                    ent_coef=0.01, learning_rate=1e-3, seed=0)
    assert agent.config.lam == 0.95 and agent.config.ent_coef == 0.01
    agent.learn(256)
    assert agent.num_timesteps >= 256


@pytest.mark.faults("Misspelled hyperparameter keyword | TypeError naming it, before anything is built | none")
def test_unknown_keyword_raises_type_error_naming_it():
    with pytest.raises(TypeError, match="learning_rat"):
        _cue_agent(learning_rat=1e-3)


def test_unknown_memory_and_algo_name_the_valid_ones():
    with pytest.raises(ConfigError, match="lstm"):
        _cue_agent(memory="gruu")
    with pytest.raises(ConfigError, match="reinforce"):
        _cue_agent(algo="dqn")


def test_a_memory_object_can_be_passed():
    from tracerl.memory import LSTMCore

    core = LSTMCore(input_dim=7, hidden_size=12)
    agent = _cue_agent(memory=core)
    assert agent.policy.core is core
    agent.learn(128)


def test_unsupported_observation_space_is_a_type_error_naming_it():
    import gymnasium as gym

    class TextEnv(gym.Env):
        observation_space = gym.spaces.Text(5)
        action_space = gym.spaces.Discrete(2)

    with pytest.raises(TypeError, match="Text"):
        TraceRL(observation_space=TextEnv.observation_space, action_space=TextEnv.action_space, verbose=0)
    with pytest.raises(UnsupportedSpaceError):
        TraceRL(observation_space=TextEnv.observation_space, action_space=TextEnv.action_space, verbose=0)


def test_predict_requires_episode_start_with_a_state():
    agent = _cue_agent()
    obs = np.zeros((2, 3), dtype=np.float32)
    _, state = agent.predict(obs)
    with pytest.raises(ValueError, match="episode_start"):
        agent.predict(obs, state)


def test_predict_single_and_batched_observations():
    agent = _cue_agent()
    a, state = agent.predict(np.zeros(3, dtype=np.float32), deterministic=True)
    assert np.shape(a) == ()
    a, state = agent.predict(np.zeros((5, 3), dtype=np.float32), deterministic=True)
    assert np.shape(a) == (5,)
    a2, _ = agent.predict(np.zeros((5, 3), dtype=np.float32), state, np.zeros(5, dtype=bool), deterministic=True)
    assert np.shape(a2) == (5,)


def test_predict_step_by_step_matches_the_policy_on_the_whole_sequence():
    agent = _cue_agent()
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1, 1, size=(9, 3, 3)).astype(np.float32)
    starts = rng.random((9, 3)) < 0.3
    starts[0] = True
    state, actions = None, []
    for t in range(9):
        action, state = agent.predict(obs[t], state, starts[t])
        actions.append(action)
    assert agent.policy_config.use_prev_action  # the default for a GRU: predict feeds back the action it took
    prev = torch.as_tensor(np.stack([np.zeros_like(actions[0])] + actions[:-1]))  # zeroed at starts by the network
    flat = agent.policy.preprocess(obs)
    _, _, ref = agent.policy(flat, agent.policy.initial_state(3), torch.as_tensor(starts), prev)
    torch.testing.assert_close(state["memory.h"], ref["h"], atol=1e-5, rtol=1e-5)


def test_the_automatic_previous_action_setting_is_printed_at_construction_unless_silent(capsys):
    TraceRL(env="tracerl/CueDelay-v0", memory="gru", n_envs=2, verbose=1)
    TraceRL(env="tracerl/CueDelay-v0", memory="mlp", n_envs=2, verbose=1)
    TraceRL(env="tracerl/CueDelay-v0", memory="gru", n_envs=2, verbose=1, use_prev_action=False)  # given: no line
    TraceRL(env="tracerl/CueDelay-v0", memory="gru", n_envs=2, verbose=0)
    lines = [line for line in capsys.readouterr().out.splitlines() if "previous action" in line]
    assert lines == ["tracerl: memory 'gru' reads its previous action (use_prev_action=None chose True: on for every "
                     "core with memory; set it to override)",
                     "tracerl: memory 'mlp' does not read its previous action (use_prev_action=None chose False: on "
                     "for every core with memory; set it to override)"]


def test_save_load_predict_identical(tmp_path):
    agent = _cue_agent()
    agent.learn(256)
    path = tmp_path / "a.tracerl"
    agent.save(path)
    loaded = TraceRL.load(path, verbose=0)
    rng = np.random.default_rng(1)
    obs = rng.uniform(-1, 1, size=(6, 8, 3)).astype(np.float32)
    s1 = s2 = None
    for t in range(6):
        start = np.full(8, t == 0)
        a1, s1 = agent.predict(obs[t], s1, start, deterministic=True)
        a2, s2 = loaded.predict(obs[t], s2, start, deterministic=True)
        np.testing.assert_array_equal(a1, a2)
        torch.testing.assert_close(s1["memory.h"], s2["memory.h"], rtol=0, atol=0)
    for (k, v), (k2, v2) in zip(agent.policy.state_dict().items(), loaded.policy.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)


@pytest.mark.parametrize("memory", ["gru", "lstm"])
def test_resume_equals_uninterrupted_training(tmp_path, memory):
    """Train 2 rollouts; or train 1, save, load into a fresh process state, train 1 more: bit-identical."""
    straight = _cue_agent(memory=memory)
    straight.learn(64 * 2)
    first = _cue_agent(memory=memory)
    first.learn(64)
    first.save(tmp_path / "mid.tracerl")
    torch.manual_seed(12345)  # disturb the global RNG: the checkpoint must restore it
    np.random.seed(7)
    resumed = TraceRL.load(tmp_path / "mid.tracerl", env="tracerl/CueDelay-v0", verbose=0)
    resumed.learn(64, reset_num_timesteps=False)
    assert resumed.num_timesteps == straight.num_timesteps
    for (k, a), (_, b) in zip(straight.policy.state_dict().items(), resumed.policy.state_dict().items()):
        assert torch.equal(a, b), k
    sa, sb = straight.ppo.optimizer.state_dict(), resumed.ppo.optimizer.state_dict()
    for i in sa["state"]:
        for key in sa["state"][i]:
            assert torch.equal(sa["state"][i][key], sb["state"][i][key]), (i, key)


@pytest.mark.faults("TraceRL.load of a flipped-byte and of a half-length agent checkpoint | CheckpointError naming the file | none")
def test_corrupted_checkpoint_raises_and_leaves_the_agent_unchanged(tmp_path):
    agent = _cue_agent()
    agent.save(tmp_path / "a.tracerl")
    data = bytearray((tmp_path / "a.tracerl").read_bytes())
    data[-5] ^= 0xFF
    (tmp_path / "bad.tracerl").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="bad.tracerl"):
        TraceRL.load(tmp_path / "bad.tracerl")
    (tmp_path / "short.tracerl").write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(CheckpointError, match="short.tracerl"):
        TraceRL.load(tmp_path / "short.tracerl")


@pytest.mark.faults("Restoring weights of a differently sized model | CheckpointError naming the file and entry; live model unchanged | none")
def test_loading_another_models_weights_is_refused(tmp_path):
    big = _cue_agent(hidden_size=32)
    big.save(tmp_path / "big.tracerl")
    small = _cue_agent()
    before = {k: v.clone() for k, v in small.policy.state_dict().items()}
    tensors, meta = __import__("tracerl.io", fromlist=["load_checkpoint"]).load_checkpoint(tmp_path / "big.tracerl")
    with pytest.raises(CheckpointError, match="big.tracerl"):
        Walk(small._components()).restore(tensors, meta, str(tmp_path / "big.tracerl"))
    for k, v in small.policy.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.faults("Env returns a NaN observation | NonFiniteError with env index, step and last action | none (raised before it enters a rollout)")
def test_nan_observation_is_reported_with_env_index_and_step():
    env = ScriptedEnv(obs_values=[0.0, 0.0, float("nan")])
    agent = TraceRL(env=env, memory="gru", seed=0, **SMALL | {"n_envs": 1})
    with pytest.raises(NonFiniteError, match=r"observation at obs from env index \[0\] at step 2"):
        agent.learn(64)


@pytest.mark.faults("Env returns an infinite reward | NonFiniteError with env index and last action | none")
def test_nan_reward_is_reported_with_env_index():
    env = ScriptedEnv(reward_values=[0.0, float("inf")])
    agent = TraceRL(env=env, memory="gru", seed=0, **SMALL | {"n_envs": 1})
    with pytest.raises(NonFiniteError, match=r"reward .* env index \[0\]"):
        agent.learn(64)


def test_dict_observations_and_multidiscrete_actions_train():
    agent = TraceRL(env=DictObsEnv, memory="lstm", seed=0, use_prev_action=True, use_prev_reward=True, **SMALL)
    agent.learn(128)
    obs = DictObsEnv().observation_space.sample()
    action, _ = agent.predict(obs)
    assert DictObsEnv.action_space.contains(np.asarray(action))


def test_box_actions_train_with_and_without_squashing():
    for squash in (False, True):
        agent = TraceRL(env="Pendulum-v1", memory="gru", seed=0, squash=squash, **SMALL)
        agent.learn(128)
        action, _ = agent.predict(np.zeros(3, dtype=np.float32))
        assert agent.action_space.contains(np.asarray(action, dtype=np.float32))


def test_learning_rate_schedule_anneals_linearly():
    agent = _cue_agent(lr_schedule="linear", learning_rate=1e-3)
    agent.learn(64 * 4)
    assert agent.ppo.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.25)


@pytest.mark.faults("NaN inside one key of a Dict observation | NonFiniteError naming obs['pos'], env indices and step | none")
def test_nan_in_a_dict_observation_names_the_key():
    import gymnasium as gym

    class NaNDict(DictObsEnv):
        def step(self, action):
            obs, r, term, trunc, info = super().step(action)
            obs["pos"] = np.array([np.nan, 0.0], dtype=np.float32)
            return obs, r, term, trunc, info

    agent = TraceRL(env=NaNDict, memory="gru", seed=0, **SMALL | {"n_envs": 2})
    assert isinstance(agent.env, gym.vector.VectorEnv)
    with pytest.raises(NonFiniteError, match=r"observation at obs\['pos'\] from env index \[0, 1\] at step 1"):
        agent.learn(64)


def test_a_vector_env_sets_the_number_of_envs_and_resumes(tmp_path):
    from tracerl.envs import CueDelayVectorEnv

    agent = TraceRL(env=CueDelayVectorEnv(3, delay=4), seed=0, **SMALL)
    assert agent.config.n_envs == 3
    agent.learn(48)
    agent.save(tmp_path / "v.tracerl")
    resumed = TraceRL.load(tmp_path / "v.tracerl", env=CueDelayVectorEnv(3, delay=4), verbose=0)
    resumed.learn(48, reset_num_timesteps=False)
    assert resumed.num_timesteps == 96


@pytest.mark.faults("Env returns a NaN observation with nan_policy='warn' | a RuntimeWarning naming env index and step; "
                    "the value is replaced by 0 and training goes on | the NaN value itself")
def test_nan_policy_warn_reports_and_continues():
    env = ScriptedEnv(obs_values=[0.0, 0.0, float("nan")])
    agent = TraceRL(env=env, memory="gru", seed=0, nan_policy="warn", **SMALL | {"n_envs": 1})
    with pytest.warns(RuntimeWarning, match=r"non-finite observation at obs from env index \[0\] at step 2"):
        agent.learn(64)
    assert agent.num_timesteps == 64
    for name, p in agent.policy.named_parameters():
        assert torch.isfinite(p).all(), name


def test_a_checkpoint_with_unknown_config_keys_is_refused(tmp_path):
    from tracerl.agent import CHECKPOINT_KIND
    from tracerl.io import load_checkpoint, save_checkpoint

    agent = _cue_agent()
    agent.save(tmp_path / "a.tracerl")
    tensors, meta = load_checkpoint(tmp_path / "a.tracerl")
    meta["ppo"]["warp_factor"] = 9
    save_checkpoint(tmp_path / "b.tracerl", tensors, meta, kind=CHECKPOINT_KIND)
    with pytest.raises(CheckpointError, match="warp_factor"):
        TraceRL.load(tmp_path / "b.tracerl")


def _weights(agent):
    return {k: v.clone() for k, v in agent.policy.state_dict().items()}


def test_a_seeded_run_does_not_depend_on_what_else_drew_random_numbers_in_between():
    """Action sampling draws from the agent's own stream: another agent trained in between, or user code drawing
    from torch's global generator, must not change a seeded run."""
    alone = _cue_agent()
    alone.learn(128)
    built = _cue_agent()
    _cue_agent(seed=9).learn(64)
    torch.rand(1000)
    built.learn(128)
    for (k, a), (_, b) in zip(_weights(alone).items(), _weights(built).items()):
        assert torch.equal(a, b), k


def test_building_training_and_sampling_leave_the_global_generator_alone():
    before = torch.get_rng_state()
    agent = _cue_agent()
    agent.learn(64)
    agent.predict(np.zeros((4, 3), np.float32), deterministic=False)
    assert torch.equal(torch.get_rng_state(), before)


def test_evaluating_between_learn_calls_does_not_change_the_training_run():
    """predict/evaluate draw from the agent's acting stream, not its training stream: a benchmark that
    evaluates every N steps trains the same agent as one that never evaluates."""
    from tracerl.evaluation import evaluate

    plain, watched = _cue_agent(), _cue_agent()
    plain.learn(64)
    plain.learn(64, reset_num_timesteps=False)
    watched.learn(64)
    evaluate(watched, "tracerl/CueDelay-v0", 8, deterministic=False, env_kwargs={"delay": 4, "difficulty": 1})
    watched.learn(64, reset_num_timesteps=False)
    for (k, a), (_, b) in zip(_weights(plain).items(), _weights(watched).items()):
        assert torch.equal(a, b), k


def test_a_loaded_agent_samples_the_same_actions_as_the_saved_one(tmp_path):
    agent = _cue_agent()
    agent.learn(64)
    agent.predict(np.zeros((4, 3), np.float32), deterministic=False)  # move the acting stream off its start
    agent.save(tmp_path / "a.tracerl")
    loaded = TraceRL.load(tmp_path / "a.tracerl", verbose=0)
    obs = np.random.default_rng(0).uniform(-1, 1, size=(64, 3)).astype(np.float32)
    a1, _ = agent.predict(obs, deterministic=False)
    a2, _ = loaded.predict(obs, deterministic=False)
    np.testing.assert_array_equal(a1, a2)


# -- an agent built from an env object records what rebuilds it --------------------------------------------------

def _env_objects():
    import gymnasium as gym

    from tracerl import MemoryTaskEnv

    return {"gym.make": lambda: gym.make("tracerl/CueDelay-v0", delay=4, difficulty=1),
            "tracerl instance": lambda: MemoryTaskEnv(delay=4, difficulty=1)}


@pytest.mark.parametrize("form", ["gym.make", "tracerl instance"])
def test_an_agent_built_from_an_env_object_saves_loads_evaluates_and_inspects_without_env(tmp_path, capsys, form):
    from tracerl.cli import main
    from tracerl.envs.safe_make import FileEnvId

    agent = TraceRL(env=_env_objects()[form](), n_envs=2, n_steps=8, hidden_size=8, seed=0, verbose=0)
    assert (agent.env_id, agent.env_kwargs) == ("tracerl/CueDelay-v0", {"delay": 4, "difficulty": 1})
    report = agent.inspect(episodes=4, out=tmp_path / "live")
    assert [len(e["steps"]) for e in report.episodes] == [4] * 4  # delay=4 (the default is 16)
    agent.save(tmp_path / "a.tracerl")
    loaded = TraceRL.load(tmp_path / "a.tracerl", verbose=0)
    assert isinstance(loaded.env_id, FileEnvId)  # read back as any file's id: the safe checks apply
    assert (loaded.env_id, loaded.env_kwargs) == ("tracerl/CueDelay-v0", {"delay": 4, "difficulty": 1})
    assert [len(e["steps"]) for e in loaded.inspect(episodes=4).episodes] == [4] * 4
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "a.tracerl"), "--episodes", "4"]) == 0, capsys.readouterr().err
    assert main(["inspect", str(tmp_path / "a.tracerl"), "--episodes", "4", "--out", str(tmp_path / "cli")]) == 0
    episodes = json.loads((tmp_path / "cli" / "inspection.json").read_text())["episodes"]
    assert [len(e["steps"]) for e in episodes] == [4] * 4


@pytest.mark.faults("An agent built from an env tracerl cannot rebuild (a lambda, an unregistered class), then inspect() "
                    "or `tracerl eval` without an env | ConfigError (exit 2) saying what to pass | none")
@pytest.mark.parametrize("form", ["lambda", "unregistered class"])
def test_an_agent_built_from_an_env_it_cannot_rebuild_says_what_to_pass(tmp_path, capsys, form):
    from helpers import ScriptedEnv as Unregistered

    from tracerl.cli import main

    env = (lambda: CueDelay(delay=4)) if form == "lambda" else Unregistered()
    agent = TraceRL(env=env, n_envs=1, n_steps=8, hidden_size=8, seed=0, verbose=0)
    assert agent.env_id is None
    with pytest.raises(ConfigError) as info:
        agent.inspect(episodes=4)
    message = str(info.value)
    assert ("a lambda" if form == "lambda" else "ScriptedEnv") in message
    assert "env=" in message and "env_kwargs=" in message
    agent.save(tmp_path / "a.tracerl")
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "a.tracerl"), "--episodes", "4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--env" in err and "--env-kwargs" in err


def test_evaluate_acts_with_the_agents_thread_count_and_restores_the_callers():
    """evaluate() sets torch's thread count to the agent's ``threads`` while it acts (as learn() does), so an
    evaluation on a shared machine is not slowed by oversubscribed tiny ops, and restores it afterwards."""
    from tracerl.evaluation import evaluate

    agent = TraceRL(env="tracerl/CueDelay-v0", env_kwargs={"delay": 2, "difficulty": 1}, seed=0, verbose=0,
                    n_envs=2, n_steps=8, threads=1)
    seen: list[int] = []
    predict = agent.predict

    def counting_predict(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return predict(*args, **kwargs)

    agent.predict = counting_predict
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        evaluate(agent, "tracerl/CueDelay-v0", 4, env_kwargs={"delay": 2, "difficulty": 1})
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
