"""Image observations: which spaces get a CNN, HWC/CHW layouts, Dict observations, the override flag,
step == sequence through the CNN, and the off-policy torso's encoder path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from tracerl.errors import ConfigError
from tracerl.policies import ActionCodec, PolicyConfig, RecurrentActorCritic, RecurrentTorso
from tracerl.policies.encoders import ImageCNN, ObservationEncoder, flat_dim, image_layout, is_image_space, preprocess


def _image(shape, dtype=np.uint8, low=0, high=255) -> spaces.Box:
    return spaces.Box(low, high, shape=shape, dtype=dtype)


def _pixels(shape, lead=(), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(*lead, *shape)).astype(np.uint8)


IMAGES = [(8, 8, 1), (8, 8, 3), (84, 84, 4), (1, 8, 8), (3, 16, 16), (7, 7, 1), (1, 1, 1)]
NOT_IMAGES = [
    _image((8, 8)),  # 2-D uint8 Box: SB3 needs 3 dims
    _image((5, 5, 5)),  # no axis with 1, 3 or 4 channels at either end
    _image((2, 8, 8)),
    _image((8, 8, 3), high=1),  # uint8, other bounds
    _image((8, 8, 3), dtype=np.float32, high=255.0),  # float Box with image bounds
    _image((3, 8, 8), dtype=np.float32, high=1.0),
    spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32),
    spaces.Discrete(4),
]


@pytest.mark.parametrize("shape", IMAGES)
def test_uint8_boxes_with_a_channel_axis_are_images_and_get_a_cnn(shape) -> None:
    space = _image(shape)
    assert is_image_space(space)
    enc = ObservationEncoder(space)
    assert enc.image_paths == ("obs",) and len(enc.cnns) == 1 and isinstance(enc.cnns[0], ImageCNN)
    out = enc(preprocess(space, _pixels(shape, (2, 3))))
    assert out.shape == (2, 3, 64) and torch.isfinite(out).all()


@pytest.mark.parametrize("space", NOT_IMAGES, ids=repr)
def test_other_spaces_keep_the_plain_mlp_and_its_parameter_names(space) -> None:
    assert not is_image_space(space)
    enc = ObservationEncoder(space)
    assert enc.image_paths == () and len(enc.cnns) == 0
    assert sorted(enc.state_dict()) == ["net.0.bias", "net.0.weight"]  # checkpoints of such envs still load
    assert enc.net[0].in_features == flat_dim(space)


def test_channel_layout_follows_sb3() -> None:
    assert image_layout(_image((8, 6, 3))) == ((3, 8, 6), False)
    assert image_layout(_image((3, 8, 6))) == ((3, 8, 6), True)
    assert image_layout(_image((3, 8, 4))) == ((3, 8, 4), True)  # both ends could be channels: the smaller one
    assert image_layout(_image((4, 8, 1))) == ((1, 4, 8), False)
    assert image_layout(_image((5, 5, 5))) is None and image_layout(spaces.Box(0, 1, (4,))) is None


def test_preprocess_scales_images_to_unit_range_and_nothing_else() -> None:
    img = np.array([0, 51, 255], np.uint8).reshape(1, 1, 3)
    np.testing.assert_allclose(preprocess(_image((1, 1, 3)), img).numpy(), [0.0, 0.2, 1.0], rtol=1e-6)
    np.testing.assert_array_equal(preprocess(_image((1, 1, 3), high=100), np.minimum(img, 100)).numpy(), [0, 51, 100])
    floats = np.array([0.0, 51.0, 255.0], np.float32).reshape(1, 1, 3)
    np.testing.assert_array_equal(preprocess(_image((1, 1, 3), np.float32, 0.0, 255.0), floats).numpy(), [0, 51, 255])


@pytest.mark.parametrize("hw", [(7, 7), (16, 16), (4, 9)])
def test_hwc_and_chw_layouts_of_the_same_pictures_give_the_same_features(hw) -> None:
    h, w = hw
    hwc, chw = _image((h, w, 3)), _image((3, h, w))
    torch.manual_seed(0)
    enc_hwc = ObservationEncoder(hwc)
    enc_chw = ObservationEncoder(chw)
    enc_chw.load_state_dict(enc_hwc.state_dict())  # same CHW weights
    pics = _pixels((h, w, 3), (5,))
    a = enc_hwc(preprocess(hwc, pics))
    b = enc_chw(preprocess(chw, np.ascontiguousarray(pics.transpose(0, 3, 1, 2))))
    torch.testing.assert_close(a, b)
    # and the HWC path really reads channels: swapping two channels changes the features
    c = enc_hwc(preprocess(hwc, np.ascontiguousarray(pics[..., [1, 0, 2]])))
    assert not torch.allclose(a, c)


def test_dict_with_image_keys_runs_a_cnn_per_image_and_passes_the_rest_through() -> None:
    space = spaces.Dict({"cam": _image((6, 6, 3)), "depth": _image((1, 5, 5)),
                         "vec": spaces.Box(-1.0, 1.0, (2,), np.float32), "mode": spaces.Discrete(3)})
    torch.manual_seed(0)
    enc = ObservationEncoder(space, hidden_sizes=(16,))
    assert enc.image_paths == ("obs['cam']", "obs['depth']") and len(enc.cnns) == 2
    assert enc.net[0].in_features == 2 * 128 + 3 + 2  # cnn features of each image + one-hot mode + vec
    obs = {"cam": _pixels((6, 6, 3), (4,), 1), "depth": _pixels((1, 5, 5), (4,), 2),
           "mode": np.array([0, 1, 2, 1]), "vec": np.random.default_rng(3).uniform(-1, 1, (4, 2)).astype(np.float32)}
    flat = preprocess(space, obs)
    expected = enc.net(torch.cat([
        enc.cnns[0](torch.as_tensor(obs["cam"], dtype=torch.float32).reshape(4, -1) / 255),
        enc.cnns[1](torch.as_tensor(obs["depth"], dtype=torch.float32).reshape(4, -1) / 255),
        torch.eye(3)[obs["mode"]], torch.as_tensor(obs["vec"]),
    ], -1))
    torch.testing.assert_close(enc(flat), expected)


def test_a_dict_without_images_keeps_the_plain_mlp() -> None:
    space = spaces.Dict({"raw": _image((8, 8)), "vec": spaces.Box(-1.0, 1.0, (2,), np.float32)})
    enc = ObservationEncoder(space)
    assert enc.image_paths == () and enc.net[0].in_features == 66


def test_override_flat_feeds_scaled_pixels_to_the_mlp() -> None:
    space = _image((8, 8, 1))
    enc = ObservationEncoder(space, image_encoder="flat")
    assert enc.image_paths == () and enc.net[0].in_features == 64
    pol = RecurrentActorCritic(space, spaces.Discrete(2), PolicyConfig(hidden_size=8, image_encoder="flat"))
    assert len(pol.encoder.cnns) == 0


def test_override_cnn_reads_float_images_unscaled() -> None:
    space = spaces.Dict({"img": _image((3, 8, 8), np.float32, 0.0, 1.0), "v": spaces.Box(0.0, 1.0, (1,))})
    assert ObservationEncoder(space).image_paths == ()  # auto: a float Box is not an image
    enc = ObservationEncoder(space, image_encoder="cnn")
    assert enc.image_paths == ("obs['img']",)
    x = np.random.default_rng(0).uniform(0, 1, (2, 3, 8, 8)).astype(np.float32)
    flat = preprocess(space, {"img": x, "v": np.zeros((2, 1), np.float32)})
    np.testing.assert_array_equal(flat[:, :192].numpy(), x.reshape(2, -1))  # not divided by 255


@pytest.mark.faults("image_encoder='cnn' for a space without images, or an unknown mode | ConfigError naming it | none")
def test_override_errors_name_the_problem() -> None:
    with pytest.raises(ConfigError, match="image_encoder='cnn'.*has none"):
        ObservationEncoder(spaces.Box(-1.0, 1.0, (3,)), image_encoder="cnn")
    with pytest.raises(ConfigError, match="image_encoder must be one of"):
        ObservationEncoder(_image((8, 8, 1)), image_encoder="conv")
    with pytest.raises(ConfigError, match="image_encoder"):
        RecurrentActorCritic(_image((8, 8, 1)), spaces.Discrete(2), PolicyConfig(image_encoder="CNN"))  # type: ignore[arg-type]


def _sequence_vs_steps(run, init_state, obs: torch.Tensor, starts: torch.Tensor):
    """Outputs of one call on ``[T, B, ...]`` and of T calls of one step, with the state carried."""
    whole, _ = run(obs, init_state, starts)
    state, steps = init_state, []
    for t in range(obs.shape[0]):
        out, state = run(obs[t : t + 1], state, starts[t : t + 1])
        steps.append(out)
    return whole, torch.cat(steps, 0)


@pytest.mark.parametrize("space", [_image((8, 8, 1)), _image((3, 7, 7)),
                                   spaces.Dict({"img": _image((6, 6, 3)), "v": spaces.Box(-1.0, 1.0, (2,))})],
                         ids=["hwc", "chw", "dict"])
def test_step_equals_sequence_through_the_image_encoder(space) -> None:
    torch.manual_seed(0)
    pol = RecurrentActorCritic(space, spaces.Discrete(3), PolicyConfig(hidden_size=16, use_prev_action=False))
    assert len(pol.encoder.cnns) == 1  # (the previous action's path is tested in test_policy.py)
    T, B = 9, 3
    space.seed(0)
    samples = [space.sample() for _ in range(T * B)]
    if isinstance(space, spaces.Dict):
        raw = {k: np.stack([s[k] for s in samples]).reshape(T, B, *space[k].shape) for k in space.spaces}
    else:
        raw = np.stack(samples).reshape(T, B, *space.shape)
    obs = pol.preprocess(raw)
    starts = torch.rand(T, B, generator=torch.Generator().manual_seed(1)) < 0.25
    starts[0] = True

    def run(o, s, e):
        dist, value, state = pol(o, s, e)
        return torch.cat([dist.logits, value.unsqueeze(-1)], -1), state

    whole, stepped = _sequence_vs_steps(run, pol.initial_state(B), obs, starts)
    torch.testing.assert_close(whole, stepped, rtol=1e-5, atol=1e-5)
    # the CNN output matters: other pixels at the first step change the action distribution
    other = obs.clone()
    other[0] = 1.0 - other[0]
    assert not torch.allclose(run(other, pol.initial_state(B), starts)[0][0], whole[0])


def test_gradients_reach_the_cnn_and_are_finite() -> None:
    space = _image((1, 12, 12))
    pol = RecurrentActorCritic(space, spaces.Discrete(2), PolicyConfig(hidden_size=8, use_prev_action=False))
    obs = pol.preprocess(_pixels((1, 12, 12), (4, 2)))
    dist, value, _ = pol(obs, pol.initial_state(2), torch.zeros(4, 2, dtype=torch.bool))
    (dist.logits.sum() + value.sum()).backward()
    grads = [p.grad for p in pol.encoder.cnns.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_an_empty_batch_encodes_to_an_empty_batch() -> None:
    space = _image((8, 8, 1))
    assert ObservationEncoder(space)(torch.zeros(0, 2, 64)).shape == (0, 2, 64)


# -- the off-policy torso --------------------------------------------------------------------------
def test_offpolicy_torso_with_the_space_uses_the_cnn_and_steps_like_a_sequence() -> None:
    space = _image((8, 8, 1))
    codec = ActionCodec(spaces.Discrete(2))
    torch.manual_seed(0)
    torso = RecurrentTorso(flat_dim(space), codec, PolicyConfig(hidden_size=8, use_prev_action=True),
                           observation_space=space)
    assert isinstance(torso.encoder, ObservationEncoder) and len(torso.encoder.cnns) == 1
    T, B = 6, 2
    obs = preprocess(space, _pixels((8, 8, 1), (T, B)))
    starts = torch.zeros(T, B, dtype=torch.bool)
    starts[0], starts[3, 1] = True, True
    actions = torch.randint(0, 2, (T, B))
    zero_r = torch.zeros(T, B)

    whole, _ = torso(obs, torso.initial_state(B), starts, actions, zero_r)
    state, steps = torso.initial_state(B), []
    for t in range(T):
        h, state = torso(obs[t : t + 1], state, starts[t : t + 1], actions[t : t + 1], zero_r[t : t + 1])
        steps.append(h)
    torch.testing.assert_close(whole, torch.cat(steps), rtol=1e-5, atol=1e-5)


def test_offpolicy_torso_without_images_or_space_uses_the_encoder_mlp_alone() -> None:
    codec = ActionCodec(spaces.Discrete(2))
    box = spaces.Box(-1.0, 1.0, (3,))
    for torso in (RecurrentTorso(64, codec, PolicyConfig()),
                  RecurrentTorso(3, codec, PolicyConfig(), observation_space=box),
                  RecurrentTorso(64, codec, PolicyConfig(image_encoder="flat"), observation_space=_image((8, 8, 1)))):
        assert isinstance(torso.encoder, ObservationEncoder) and len(torso.encoder.cnns) == 0
        assert sorted(torso.encoder.state_dict()) == ["net.0.bias", "net.0.weight"]


@pytest.mark.faults("off-policy torso asked for a CNN it cannot build | ConfigError saying why | none")
def test_offpolicy_torso_refuses_a_cnn_it_cannot_build() -> None:
    codec = ActionCodec(spaces.Discrete(2))
    with pytest.raises(ConfigError, match="without the observation space"):
        RecurrentTorso(64, codec, PolicyConfig(image_encoder="cnn"))
    with pytest.raises(ConfigError, match="HER"):
        RecurrentTorso(64, codec, PolicyConfig(), input_index=list(range(10)), observation_space=_image((8, 8, 1)))


# -- learning ---------------------------------------------------------------------------------------
def test_ppo_gru_at_the_defaults_solves_the_image_cue_and_survives_save_load(tmp_path) -> None:
    from tracerl import TraceRL
    from tracerl.evaluation import evaluate

    kwargs = {"delay": 4, "difficulty": 0}
    agent = TraceRL(env="tracerl/ImageCueDelay-v0", env_kwargs=kwargs, seed=0, verbose=0)
    assert agent.policy.encoder.image_paths == ("obs",)  # chosen automatically
    agent.learn(8192)  # about 10 s on a loaded 2-core machine; benchmarks/image_memory.py runs the comparison
    success = evaluate(agent, "tracerl/ImageCueDelay-v0", n_episodes=200, seed=123, env_kwargs=kwargs).success_rate
    assert success >= 0.95
    agent.save(tmp_path / "agent.tracerl")
    loaded = TraceRL.load(tmp_path / "agent.tracerl")
    assert loaded.policy_config.image_encoder == "auto" and len(loaded.policy.encoder.cnns) == 1
    again = evaluate(loaded, "tracerl/ImageCueDelay-v0", n_episodes=200, seed=123, env_kwargs=kwargs).success_rate
    assert again == success


@pytest.mark.parametrize("algo", ["r2d2", "sac"])
def test_offpolicy_agents_build_a_cnn_for_image_observations_and_train_and_reload(algo, tmp_path) -> None:
    from tracerl import TraceRL

    kwargs = {"delay": 3, "difficulty": 0}
    agent = TraceRL(env="tracerl/ImageCueDelay-v0", env_kwargs=kwargs, algo=algo, seed=0, verbose=0, n_envs=4,
                    hidden_size=16, seq_len=4, burn_in=1, learning_starts=64, buffer_size=1000, batch_size=8)
    torsos = agent.algorithm.torsos()
    assert torsos and all(any(isinstance(m, torch.nn.Conv2d) for m in t.modules()) for t in torsos.values())
    before = {k: v.clone() for k, v in next(iter(torsos.values())).encoder.state_dict().items()}
    agent.learn(300)
    after = next(iter(agent.algorithm.torsos().values())).encoder.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the CNN is trained, not just built
    obs = np.stack([agent.observation_space.sample() for _ in range(2)])
    action, _ = agent.predict(obs, deterministic=True)
    agent.save(tmp_path / "agent.tracerl")
    loaded = TraceRL.load(tmp_path / "agent.tracerl")
    assert all(any(isinstance(m, torch.nn.Conv2d) for m in t.modules()) for t in loaded.algorithm.torsos().values())
    again, _ = loaded.predict(obs, deterministic=True)
    np.testing.assert_array_equal(again, action)
