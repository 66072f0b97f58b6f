"""The one algorithm registry: every algorithm name comes from it, and an algorithm registered from outside the
package (here, from this test file) trains, predicts, saves and loads through ``TraceRL`` like a built-in one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from tracerl import TraceRL
from tracerl.algos.r2d2 import R2D2, R2D2Config
from tracerl.algos.registry import available_algos, get_algo, register_algo, unregister_algo
from tracerl.errors import ConfigError


@dataclass
class PlainDQNConfig(R2D2Config):
    """R2D2 without the dueling head (a different default, so the config class is seen to be used)."""

    dueling: bool = False


class PlainDQN(R2D2):
    """R2D2 counting its own updates (so the test sees that this class trained)."""

    updates_here = 0

    def update(self, batch):
        PlainDQN.updates_here += 1
        return super().update(batch)


@pytest.fixture
def plain_dqn():
    register_algo("plain_dqn", PlainDQNConfig, PlainDQN, kind="off_policy", doc="test")
    PlainDQN.updates_here = 0
    yield "plain_dqn"
    unregister_algo("plain_dqn")


def test_builtin_algorithms_are_registered_with_their_kind():
    assert available_algos("on_policy") == ("ppo", "a2c", "reinforce")
    assert available_algos("off_policy") == ("sac", "td3", "r2d2", "drqn", "nec", "mfec")
    assert get_algo("a2c").make_config().n_epochs == 1  # A2C's defaults come from its config factory


def test_an_unknown_algorithm_names_the_registered_ones(plain_dqn):
    with pytest.raises(ConfigError, match="unknown algo 'nope'.*plain_dqn"):
        get_algo("nope")
    with pytest.raises(ConfigError, match="already registered"):
        register_algo("plain_dqn", PlainDQNConfig, PlainDQN, kind="off_policy")
    with pytest.raises(ConfigError, match="kind="):
        register_algo("other", PlainDQNConfig, PlainDQN, kind="sideways")  # type: ignore[arg-type]


def test_a_registered_off_policy_algorithm_gets_her_and_the_cli_list(plain_dqn, capsys):
    PlainDQNConfig(her=True).validate()  # HER is a field of every off-policy config, registered ones too
    with pytest.raises(ConfigError, match="plain_dqn"):  # the on-policy refusal lists the registered ones
        TraceRL(env="tracerl/CueDelay-v0", algo="ppo", her=True, verbose=0)
    from tracerl.cli import main

    assert main(["list"]) == 0
    assert "plain_dqn" in capsys.readouterr().out


def test_an_algorithm_registered_in_a_test_file_trains_predicts_saves_and_loads(plain_dqn, tmp_path):
    agent = TraceRL(env="tracerl/CueDelay-v0", env_kwargs={"delay": 3, "difficulty": 1}, algo=plain_dqn, seed=0,
                    verbose=0, n_envs=2, hidden_size=8, seq_len=4, burn_in=2, learning_starts=40, buffer_size=400,
                    batch_size=4)
    assert agent.config.dueling is False and isinstance(agent.config, PlainDQNConfig)
    agent.learn(120)
    assert PlainDQN.updates_here > 0 and agent.algorithm.n_updates == PlainDQN.updates_here
    obs = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)
    action, state = agent.predict(obs, deterministic=True)
    assert action.shape == (2,)
    agent.save(tmp_path / "a.tracerl")
    loaded = TraceRL.load(tmp_path / "a.tracerl")
    assert loaded.algo == plain_dqn and isinstance(loaded.algorithm, PlainDQN)
    assert np.array_equal(loaded.predict(obs, deterministic=True)[0], action)
