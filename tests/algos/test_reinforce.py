"""REINFORCE: Monte Carlo returns over whole episodes, across rollout edges, never bootstrapped; exact memory
replay of held-back steps; checkpoints keep them; it learns a short memory task."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from tracerl import TraceRL
from tracerl.algos.gae import monte_carlo_returns
from tracerl.algos.ppo import PPOConfig
from tracerl.data.episodes import EpisodeStore
from tracerl.errors import ConfigError
from tracerl.evaluation import evaluate

GAMMA = 0.9


class Ladder(gym.Env):
    """Episodes of ``length`` steps (ending by truncation when ``truncate``, else termination); the reward of step
    k is ``k + 1`` whatever the action; the observation is ``[k, episode number]``."""

    def __init__(self, length: int, truncate: bool) -> None:
        self.length, self.truncate = length, truncate
        self.observation_space = gym.spaces.Box(-1e6, 1e6, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.k, self.episode = 0, -1

    def _obs(self) -> np.ndarray:
        return np.array([self.k, self.episode], np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.k, self.episode = 0, self.episode + 1
        return self._obs(), {}

    def step(self, action):
        r = float(self.k + 1)
        self.k += 1
        end = self.k >= self.length
        return self._obs(), r, end and not self.truncate, end and self.truncate, {}


def _ladders(lengths=(7, 5), truncate=(True, False)) -> gym.vector.VectorEnv:
    fns = [lambda n=n, t=t: Ladder(n, t) for n, t in zip(lengths, truncate)]
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


def _mc(length: int, k: int) -> float:
    """Hand-computed return of step k of a Ladder episode: sum_{i=k}^{length-1} gamma^(i-k) (i + 1)."""
    return sum(GAMMA ** (i - k) * (i + 1) for i in range(k, length))


def _agent(env, **kw) -> TraceRL:
    base = dict(algo="reinforce", memory="gru", hidden_size=8, n_steps=3, gamma=GAMMA, seed=0, verbose=0,
                reward_norm=False)  # the returns are checked in the env's own reward units
    base.update(kw)
    return TraceRL(env=env, **base)


def _rollouts(agent: TraceRL, n: int):
    """Collect n rollouts (no update); yield each rollout's buffer after its whole episodes were handed out."""
    from tracerl.data.rollout import RolloutBuffer

    collector = agent._ensure_collector()
    for _ in range(n):
        buf = RolloutBuffer.allocate(agent.policy, agent.config.n_steps, collector.n_envs, agent.config.chunk_len,
                                     agent.device)
        collector.collect(buf)
        yield buf


def test_monte_carlo_returns_match_a_hand_computed_sum_and_stop_at_episode_ends():
    r = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    d = torch.tensor([[False], [True], [False], [True]])
    g = monte_carlo_returns(r, d, 0.5)
    torch.testing.assert_close(g, torch.tensor([[1.0 + 0.5 * 2.0], [2.0], [3.0 + 0.5 * 4.0], [4.0]]))


def test_reinforce_returns_equal_the_monte_carlo_sum_across_rollout_edges():
    # Episodes of 7 (truncated) and 5 (terminated) steps, rollouts of 3 steps: every episode straddles edges.
    agent = _agent(_ladders())
    with torch.no_grad():  # a critic far from zero: a bootstrap from it would show in the returns
        for p in agent.policy.critic.parameters():
            p.add_(100.0)
    seen: dict[tuple[int, int, int], float] = {}
    for buf in _rollouts(agent, 12):
        seqs, _ = agent.ppo.episode_sequences(buf)
        mask = seqs["mask"] > 0
        for t, b in mask.nonzero().tolist():
            k, ep = (int(x) for x in seqs["obs"][t, b, :2].round())
            assert (b, ep, k) not in seen, "every step is trained once"
            seen[(b, ep, k)] = float(seqs["returns"][t, b])
    # 36 steps per env: env 0 ends 5 episodes of 7 (35 steps), env 1 seven of 5 (35 steps)
    assert len(seen) == 70
    for (b, ep, k), g in seen.items():
        length = (7, 5)[b]
        assert g == pytest.approx(_mc(length, k), rel=1e-6), (b, ep, k)
    assert {(b, k) for (b, _, k) in seen} == {(0, k) for k in range(7)} | {(1, k) for k in range(5)}


def test_steps_of_a_running_episode_are_held_back_until_it_ends():
    agent = _agent(_ladders((7, 7), (True, True)))
    bufs = _rollouts(agent, 3)
    buf = next(bufs)  # steps 0-2 of episode 0: nothing has ended
    seqs, _ = agent.ppo.episode_sequences(buf)
    assert seqs["obs"].shape[0] == 0 and agent.collector.episodes.length.tolist() == [3, 3]
    next(bufs)  # steps 3-5
    buf = next(bufs)  # step 6 ends episode 0: all 7 of its steps come out together
    seqs, _ = agent.ppo.episode_sequences(buf)
    assert seqs["obs"].shape[0] == 7 and bool((seqs["mask"] > 0).all())
    assert seqs["obs"][:, 0, 0].tolist() == list(range(7)) and bool(seqs["episode_start"][0].all())
    assert agent.collector.episodes.length.tolist() == [2, 2]  # steps 0-1 of episode 1


def test_replaying_held_back_steps_from_the_episode_start_reproduces_the_acting_memory_exactly():
    from tracerl.envs.cue_delay import CueDelay  # noqa: F401 (registers the env)

    agent = _agent("tracerl/CueDelay-v0", env_kwargs={"delay": 6}, n_envs=4, n_steps=5, use_prev_action=True,
                   use_prev_reward=True)
    n_checked = 0
    for buf in _rollouts(agent, 6):
        seqs, state = agent.ppo.episode_sequences(buf)
        if seqs["obs"].shape[0] == 0:
            continue
        with torch.no_grad():
            out = agent.policy.forward_full(seqs["obs"], state, seqs["episode_start"], seqs["prev_action"],
                                            seqs["prev_reward"])
        m = seqs["mask"] > 0
        lp = out.dist.log_prob(seqs["action"])
        torch.testing.assert_close(lp[m], seqs["log_prob"][m], rtol=0, atol=1e-6)
        n_checked += int(m.sum())
    assert n_checked > 60


def test_reinforce_checkpoint_keeps_held_back_steps_and_resumes_identically(tmp_path):
    kw = dict(env_kwargs={"delay": 6}, n_envs=2, n_steps=5)
    straight = _agent("tracerl/CueDelay-v0", **kw).learn(40)
    first = _agent("tracerl/CueDelay-v0", **kw).learn(20)
    assert int(first.collector.episodes.length.max()) > 0  # something is held back at the save
    first.save(tmp_path / "a.tracerl")
    resumed = TraceRL.load(tmp_path / "a.tracerl", env="tracerl/CueDelay-v0", verbose=0)
    assert torch.equal(resumed.collector.episodes.length, first.collector.episodes.length)
    resumed.learn(20, reset_num_timesteps=False)
    a, b = straight.policy.state_dict(), resumed.policy.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_crashed_episode_is_dropped_whole_even_when_it_started_in_an_earlier_rollout():
    store = EpisodeStore(1, 100)

    def steps(done, valid):
        T = len(done)
        return {"done": torch.tensor(done)[:, None], "valid": torch.tensor(valid)[:, None],
                "episode_start": torch.tensor([False] * T)[:, None], "reward": torch.ones(T, 1)}

    first = steps([False, False], [1.0, 1.0])
    first["episode_start"][0] = True
    assert store.take(first)["mask"].shape == (0, 1)
    out = store.take(steps([True, False, True], [0.0, 1.0, 1.0]))  # the crash ends episode 0 at its 3rd step
    assert out["mask"][:, 0].tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]


@pytest.mark.faults("REINFORCE on an env whose episode never ends | ConfigError naming the env index, the "
                    "max_episode_steps cap and the fix (a time limit) once that many steps are held back | none")
def test_an_episode_that_never_ends_is_refused_with_the_env_index():
    agent = _agent(_ladders((1000, 3), (True, True)), max_episode_steps=10)
    with pytest.raises(ConfigError, match="env index 0 .* time limit"):
        agent.learn(30)


@pytest.mark.parametrize("bad,match", [(dict(bootstrap_on_truncation=True), "bootstrap_on_truncation"),
                                       (dict(bptt_len=2), "bptt_len"),
                                       (dict(max_episode_steps=0), "max_episode_steps")])
def test_reinforce_config_refuses_a_bootstrap_or_cut_episodes(bad, match):
    with pytest.raises(ConfigError, match=match):
        PPOConfig.reinforce(**bad).validate()


def test_without_a_critic_nothing_is_bootstrapped_even_in_gae_mode():
    assert not PPOConfig(use_critic=False).bootstraps_truncations
    assert PPOConfig().bootstraps_truncations and not PPOConfig.reinforce().bootstraps_truncations


def test_reinforce_learns_cue_delay_2():
    agent = _agent("tracerl/CueDelay-v0", env_kwargs={"delay": 2, "difficulty": 1}, hidden_size=16, n_envs=16,
                   n_steps=16)
    agent.learn(12_000)
    assert evaluate(agent, "tracerl/CueDelay-v0", 100, env_kwargs={"delay": 2, "difficulty": 1}).success_rate >= 0.9

