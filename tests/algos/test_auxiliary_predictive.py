"""PredictiveAuxModule: the MERLIN-style predictive memory loss (issue 20 item 4)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tracerl import TraceRL
from tracerl.algos.auxiliary import PredictiveAuxModule, aux_module_from_json, aux_module_to_json
from tracerl.errors import ConfigError
from tracerl.memory import available_memories, make_memory

CUE = "tracerl/CueDelay-v0"


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x.float()


def _constant_module(feat_dim=2, obs_dim=2, action_dim=2, latent_dim=1, *, post=(1.0, 0.0), prior=(0.0, math.log(4.0)),
                     decoded=(0.0, 0.0, 0.0, 0.0, 0.0), **kw) -> PredictiveAuxModule:
    """A module whose networks ignore their inputs: posterior N(post[0], exp(post[1])), prior N(prior[0],
    exp(prior[1])) (except where the prior is N(0, 1)), decoder output ``decoded`` whatever z is."""
    m = PredictiveAuxModule(feat_dim, obs_dim=obs_dim, action_dim=action_dim, latent_dim=latent_dim, hidden=3, **kw)
    m.bind(obs_dim, _identity, action_dim)
    with torch.no_grad():
        for net, bias in ((m.posterior, post), (m.prior, prior), (m.decoder, decoded)):
            last = net[-1]
            last.weight.zero_()
            last.bias.copy_(torch.tensor(bias))
    return m


def _batch(T=3, B=1, starts=(True, False, False)):
    obs = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])[:T].view(T, B, 2)
    prev_action = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])[:T].view(T, B, 2)
    prev_reward = torch.tensor([5.0, 0.0, 3.0])[:T].view(T, B)
    episode_start = torch.tensor(starts)[:T].view(T, B)
    return {"obs": obs, "prev_action": prev_action, "prev_reward": prev_reward, "episode_start": episode_start}


def test_loss_has_the_hand_computed_value_on_a_tiny_sequence():
    """T = 3, one row, episode start at t = 0; decoder outputs 0; posterior N(1, 1); prior N(0, 4) after t = 0.

    obs:    0.5 * (|(1,0)|^2, |(0,2)|^2, |(1,1)|^2) = (0.5, 2, 1) -> mean 7/6
    reward: previous rewards (5, 0, 3), zeroed at the start: 0.5 * (0, 0, 9) -> mean 1.5
    action: previous actions zeroed at the start: 0.5 * (0, |(1,0)|^2, |(0,1)|^2) = (0, 0.5, 0.5) -> mean 1/3
    KL:     t = 0 against N(0, 1): 0.5; t = 1, 2 against N(0, 4): log 2 + 2/8 - 1/2 -> mean (0.5 + 2 (log 2 - 1/4)) / 3
    """
    m = _constant_module(obs_coef=1.0, reward_coef=0.5, action_coef=2.0, kl_coef=0.25)
    features = torch.zeros(3, 1, 2)
    loss = m.loss(features, _batch(), torch.ones(3, 1))
    kl = (0.5 + 2 * (math.log(2.0) - 0.25)) / 3
    parts = m.loss_parts()
    assert parts["predictive_obs"] == pytest.approx(7 / 6)
    assert parts["predictive_reward"] == pytest.approx(1.5)
    assert parts["predictive_action"] == pytest.approx(1 / 3)
    assert parts["predictive_kl"] == pytest.approx(kl)
    assert float(loss.detach()) == pytest.approx(7 / 6 + 0.5 * 1.5 + 2.0 / 3 + 0.25 * kl)


def test_padding_is_left_out_and_a_sequence_starting_mid_episode_has_no_kl_at_its_first_step():
    m = _constant_module()
    features = torch.zeros(3, 1, 2)
    # Mid-episode start: t = 0 has no h_{t-1}; only t = 1 is real (t = 2 padding): KL = log 2 - 1/4 exactly.
    m.loss(features, _batch(starts=(False, False, False)), torch.tensor([[1.0], [1.0], [0.0]]))
    parts = m.loss_parts()
    assert parts["predictive_kl"] == pytest.approx(math.log(2.0) - 0.25)
    assert parts["predictive_obs"] == pytest.approx((0.5 + 2.0) / 2)
    assert parts["predictive_reward"] == pytest.approx((12.5 + 0.0) / 2)  # t = 0 is not a start: 5 is a target


def test_the_prior_reads_the_previous_steps_features_and_the_posterior_the_current_ones():
    torch.manual_seed(0)
    m = PredictiveAuxModule(4, obs_dim=2, action_dim=2, latent_dim=3)
    features = torch.randn(5, 2, 4)
    starts = torch.zeros(5, 2, dtype=torch.bool)
    starts[3, 1] = True
    mu_q, logvar_q, mu_p, logvar_p = m.distributions(features, starts)
    post = m.posterior(features)
    torch.testing.assert_close(mu_q, post[..., :3])
    prior = m.prior(features)
    torch.testing.assert_close(mu_p[1:3], prior[0:2, :, :3])  # step t from features at t - 1
    torch.testing.assert_close(mu_p[4, 1], prior[3, 1, :3])
    assert torch.equal(mu_p[3, 1], torch.zeros(3)) and torch.equal(logvar_p[3, 1], torch.zeros(3))  # episode start
    assert torch.equal(mu_p[0], torch.zeros(2, 3))  # no h_{-1}


def test_gradient_reaches_the_core_through_the_current_and_the_previous_features():
    torch.manual_seed(0)
    core = make_memory("gru", input_dim=3, hidden_size=8)
    m = PredictiveAuxModule(core.output_dim, obs_dim=3, action_dim=2)
    m.bind(3, _identity, 2)
    T, B = 6, 4
    obs = torch.randn(T, B, 3)
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[0] = True
    features, _ = core(obs, core.initial_state(B), starts)
    features.retain_grad()
    batch = {"obs": obs, "prev_action": torch.randn(T, B, 2), "prev_reward": torch.randn(T, B), "episode_start": starts}
    m.loss(features, batch, torch.ones(T, B)).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in core.parameters())
    # The KL alone also trains the previous step's features (the prior's input): zero every other term.
    features2, _ = core(obs, core.initial_state(B), starts)
    features2.retain_grad()
    m_kl = PredictiveAuxModule(core.output_dim, obs_dim=3, action_dim=2, obs_coef=0.0, reward_coef=0.0,
                               action_coef=0.0, kl_coef=1.0)
    m_kl.bind(3, _identity, 2)
    with torch.no_grad():
        m_kl.posterior[-1].weight.zero_()  # the posterior ignores h_t: any gradient on h_t comes from the prior
    m_kl.loss(features2, batch, torch.ones(T, B)).backward()
    assert features2.grad[:-1].abs().sum(-1).min() > 0  # h_0 .. h_{T-2} feed priors
    assert features2.grad[-1].abs().sum() == 0  # h_{T-1} feeds no prior and the posterior ignores it


def test_loss_falls_when_the_memory_must_store_the_observation_to_predict_it():
    """Sequences repeat a random pattern of period 3 (o_t = o_{t-3}): from t = 3 on, the prior at t can only
    match the posterior if the core's features at t - 1 still hold o_{t-3}. A GRU trained by this loss alone
    must bring the KL at those steps well below the KL at t = 1, 2 (fresh values nothing can predict; measured:
    0.45 against 2.3 after 400 steps)."""
    torch.manual_seed(0)
    T, B, D = 9, 32, 4
    pattern = torch.randint(0, 2, (3, B, D)).float() * 2 - 1
    obs = pattern.repeat(T // 3, 1, 1)
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[0] = True
    batch = {"obs": obs, "prev_action": torch.zeros(T, B, 1), "prev_reward": torch.zeros(T, B), "episode_start": starts}
    core = make_memory("gru", input_dim=D, hidden_size=32)
    m = PredictiveAuxModule(core.output_dim, obs_dim=D, action_dim=1, latent_dim=8)
    m.bind(D, _identity, 1)
    opt = torch.optim.Adam([*core.parameters(), *m.parameters()], lr=1e-2)

    def kl_per_step() -> torch.Tensor:
        with torch.no_grad():
            features, _ = core(obs, core.initial_state(B), starts)
            mu_q, lv_q, mu_p, lv_p = m.distributions(features, starts)
            return (0.5 * (lv_p - lv_q + (lv_q.exp() + (mu_q - mu_p) ** 2) / lv_p.exp() - 1)).sum(-1).mean(1)

    losses = []
    for _ in range(400):
        features, _ = core(obs, core.initial_state(B), starts)
        loss = m.loss(features, batch, torch.ones(T, B))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10
    kl = kl_per_step()
    assert m.loss_parts()["predictive_obs"] < 0.25 * D * 0.5  # the latent carries the observation
    assert float(kl[3:].mean()) < 0.35 * float(kl[1:3].mean())


def test_module_round_trips_through_json_and_checks_its_arguments():
    m = PredictiveAuxModule(8, coef=0.3, obs_dim=5, action_dim=2, latent_dim=4, hidden=7, kl_coef=0.5)
    rebuilt = aux_module_from_json(aux_module_to_json(m))
    assert isinstance(rebuilt, PredictiveAuxModule) and rebuilt.config() == m.config()
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in m.state_dict().items()}
    for field, value in (("latent_dim", 0), ("hidden", -1), ("kl_coef", -1.0), ("obs_dim", 0)):
        with pytest.raises(ConfigError, match=field):
            PredictiveAuxModule(8, **{field: value})


@pytest.mark.faults("A PredictiveAuxModule built for other observation/action widths than the policy's | ConfigError "
                    "naming both widths, before training | none")
def test_a_module_built_for_other_widths_is_refused_when_attached():
    with pytest.raises(ConfigError, match="obs_dim=7.*width 3"):
        TraceRL(env=CUE, env_kwargs={"delay": 4}, verbose=0, hidden_size=16,
                aux_modules=[PredictiveAuxModule(16, obs_dim=7, action_dim=2)])


@pytest.mark.faults("aux=('predictive',) or aux_modules with an off-policy algorithm (SAC, TD3, R2D2, DRQN) | "
                    "ConfigError naming the algorithm, before anything is built | none")
@pytest.mark.parametrize("algo", ["r2d2", "sac"])
def test_off_policy_algorithms_refuse_the_predictive_loss_with_a_config_error(algo):
    with pytest.raises(ConfigError, match=f"algo='{algo}'"):
        TraceRL(env=CUE, algo=algo, aux=("predictive",), verbose=0)
    with pytest.raises(ConfigError, match=f"algo='{algo}'"):
        TraceRL(env=CUE, algo=algo, aux_modules=[PredictiveAuxModule(64)], verbose=0)


def test_ppo_trains_logs_saves_and_loads_the_predictive_loss(tmp_path):
    agent = TraceRL(env=CUE, env_kwargs={"delay": 4, "difficulty": 1}, aux=("predictive",), aux_predictive_coef=0.5,
                    use_prev_action=True, use_prev_reward=True, seed=0, verbose=0, n_envs=4, n_steps=16,
                    hidden_size=16, tensorboard_log=str(tmp_path / "log"))
    (m,) = agent.aux_modules
    assert isinstance(m, PredictiveAuxModule) and m.coef == 0.5 and (m.obs_dim, m.action_dim) == (3, 2)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    stats = []
    agent.learn(128, callback=lambda a, st: stats.append(st))
    assert all(math.isfinite(st[f"aux/predictive_{k}"]) for st in stats for k in ("obs", "reward", "action", "kl"))
    assert any(not torch.equal(before[k], v) for k, v in m.state_dict().items())
    header = (tmp_path / "log" / "progress.csv").read_text().splitlines()[0].split(",")
    assert {"aux/predictive_obs", "aux/predictive_kl", "rollout/aux_loss_mean"} <= set(header)
    agent.save(tmp_path / "a.tracerl")
    loaded = TraceRL.load(tmp_path / "a.tracerl", verbose=0)
    (lm,) = loaded.aux_modules
    assert lm.config() == m.config()
    for k, v in m.state_dict().items():
        assert torch.equal(lm.state_dict()[k], v), k


def test_same_seed_gives_the_same_training_with_the_predictive_loss():
    def run() -> dict[str, torch.Tensor]:
        agent = TraceRL(env=CUE, env_kwargs={"delay": 4}, aux=("predictive",), seed=3, verbose=0, n_envs=2,
                        n_steps=16, hidden_size=8)
        agent.learn(64)
        return agent.policy.state_dict()

    a, b = run(), run()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("memory", available_memories())
def test_every_registered_core_trains_with_the_predictive_loss(memory):
    agent = TraceRL(env=CUE, env_kwargs={"delay": 4}, memory=memory, aux=("predictive",), aux_predictive_coef=1.0,
                    seed=0, verbose=0, n_envs=2, n_steps=8, hidden_size=8, n_epochs=2)
    core_before = {k: v.clone() for k, v in agent.policy.core.state_dict().items() if v.is_floating_point()}
    stats = []
    agent.learn(32, callback=lambda a, st: stats.append(st))
    assert stats and all(math.isfinite(st["aux/predictive_kl"]) and math.isfinite(st["aux_loss"]) for st in stats)
    after = agent.policy.core.state_dict()
    assert any(not torch.equal(v, after[k]) for k, v in core_before.items()), f"{memory}: the core did not learn"


@pytest.mark.faults("A re-hashed checkpoint whose PredictiveAuxModule config asks for networks over the parameter "
                    "limit | CheckpointError naming the file, the networks built on the meta device only | none")
def test_checkpoint_asking_for_a_huge_predictor_is_refused_by_the_parameter_budget(tmp_path, monkeypatch):
    from checkpoint_edit import read_raw, write_rehashed

    from tracerl.errors import CheckpointError
    from tracerl.io import restore_checks

    agent = TraceRL(env=CUE, env_kwargs={"delay": 2}, aux=("predictive",), n_envs=2, n_steps=8, hidden_size=8,
                    seed=0, verbose=0)
    agent.learn(16)
    agent.save(tmp_path / "a.tracerl")
    tensors, meta, kind = read_raw(tmp_path / "a.tracerl")
    meta["aux_modules"][0]["config"].update(hidden=3000, latent_dim=3000)  # ~ 36M parameters
    write_rehashed(tmp_path / "big.tracerl", tensors, meta, kind)
    monkeypatch.setattr(restore_checks, "LIMITS", restore_checks.LoadLimits(max_parameters=10_000_000))
    with pytest.raises(CheckpointError, match="parameters") as err:
        TraceRL.load(tmp_path / "big.tracerl", verbose=0)
    assert "big.tracerl" in str(err.value)
    TraceRL.load(tmp_path / "a.tracerl", verbose=0)  # the original is within the same limit


@pytest.mark.parametrize("algo", ["a2c", "reinforce"])
def test_the_other_on_policy_algorithms_train_the_predictive_loss(algo):
    agent = TraceRL(env=CUE, env_kwargs={"delay": 4}, algo=algo, aux=("predictive",), seed=0, verbose=0, n_envs=2,
                    n_steps=8, hidden_size=8)
    (m,) = agent.aux_modules
    before = {k: v.clone() for k, v in m.state_dict().items()}
    stats = []
    agent.learn(64, callback=lambda a, st: stats.append(st))
    assert any(math.isfinite(st.get("aux/predictive_kl", math.nan)) for st in stats)
    assert any(not torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_the_predictive_loss_alone_trains_the_strategic_memorys_recall():
    """The strategic memory reads raw steps (``input_form = "raw_steps"``: no encoder or projection in front of it);
    the predictive loss reads its output features like any core's, and its gradient alone reaches the write
    embedding and every recall parameter (query, key, value, output and the age slopes, which act only through
    reading stored entries). The retention scorer and the hindsight predictors are trained by the core's own
    losses, not by the features: the loss leaves them without a gradient."""
    agent = TraceRL(env=CUE, env_kwargs={"delay": 6, "difficulty": 1}, memory="strategic", aux=("predictive",),
                    seed=0, verbose=0, n_envs=2, n_steps=8)
    policy, (m,) = agent.policy, agent.aux_modules
    assert type(policy.core).input_form == "raw_steps" and isinstance(policy.project, nn.Identity)
    torch.manual_seed(0)
    T, B = 12, 3
    obs = torch.randint(0, 2, (T, B, 3)).float() * 2 - 1
    prev_action = torch.randint(0, 2, (T, B))
    prev_reward = torch.randn(T, B)
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[0] = True
    starts[6, 1] = True
    out = policy.forward_full(obs, policy.initial_state(B), starts, prev_action, prev_reward)
    batch = {"obs": obs, "prev_action": prev_action, "prev_reward": prev_reward, "episode_start": starts}
    policy.zero_grad(set_to_none=True)
    m.loss(out.features, batch, torch.ones(T, B)).backward()
    grads = {n: p.grad for n, p in policy.core.named_parameters()}
    for name in ("embed.0.weight", "query.weight", "key.weight", "value.weight", "out.weight", "age_slope"):
        assert grads[name] is not None and grads[name].abs().sum() > 0, name
        assert torch.isfinite(grads[name]).all(), name
    assert all(grads[n] is None for n in grads if n.startswith(("scorer.", "h_pred.", "h_base.")))
