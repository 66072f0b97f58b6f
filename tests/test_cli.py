"""The `tracerl` command line."""

from __future__ import annotations

import json

import pytest

from tracerl.cli import main, parse_kwargs


def test_list_names_envs_memories_and_algorithms(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("tracerl/CueDelay-v0", "gru", "lstm", "mlp", "ppo", "a2c", "reinforce"):
        assert name in out


def test_train_then_eval_a_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--env", "tracerl/CueDelay-v0", "--env-kwargs", "delay=4", "difficulty=1",
                 "--memory", "gru", "--algo", "ppo", "--steps", "512", "--seed", "0", "--out", str(out),
                 "--n-envs", "4", "--n-steps", "32", "--hidden-size", "16", "--no-progress", "--verbose", "0",
                 "--eval-episodes", "20", "--reward-norm", "False"])
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    assert config["env_kwargs"] == {"delay": 4, "difficulty": 1}
    assert config["ppo"]["n_envs"] == 4 and config["policy"]["hidden_size"] == 16
    assert config["memory_agent"]["reward_norm"] is False  # the memory-agent options are recorded too
    assert json.loads((out / "eval.json").read_text())["episodes"] == 20
    assert (out / "progress.csv").exists()
    capsys.readouterr()
    assert main(["eval", str(out / "agent.tracerl"), "--episodes", "30"]) == 0
    table = capsys.readouterr().out
    assert "success rate" in table and "30" in table


def test_algo_defaults_apply_when_a_flag_is_unset(tmp_path):
    out = tmp_path / "a2c"
    assert main(["train", "--algo", "a2c", "--steps", "64", "--out", str(out), "--n-envs", "2", "--no-progress",
                 "--verbose", "0", "--eval-episodes", "0", "--env-kwargs", "delay=2"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["ppo"]["n_epochs"] == 1 and config["ppo"]["n_steps"] == 8


def test_invalid_values_exit_with_an_error_naming_the_field(tmp_path, capsys):
    code = main(["train", "--n-steps", "0", "--out", str(tmp_path / "x"), "--no-progress"])
    assert code == 2
    assert "n_steps" in capsys.readouterr().err
    code = main(["train", "--memory", "nope", "--out", str(tmp_path / "y"), "--no-progress"])
    assert code == 2
    assert "nope" in capsys.readouterr().err


def test_eval_of_a_missing_checkpoint_names_the_file(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "missing.tracerl")]) == 2
    assert "missing.tracerl" in capsys.readouterr().err


def test_unknown_command_lists_the_valid_ones(capsys):
    assert main(["fly"]) == 2
    assert "train" in capsys.readouterr().err


def test_parse_kwargs_literals_and_errors():
    assert parse_kwargs(["delay=64", "name=abc", "flag=True", "x=1.5"], "--env-kwargs") == {
        "delay": 64, "name": "abc", "flag": True, "x": 1.5}
    with pytest.raises(ValueError, match="--env-kwargs"):
        parse_kwargs(["delay"], "--env-kwargs")


def test_copytask_command_runs_and_writes_results(tmp_path, capsys):
    out = tmp_path / "copy.json"
    assert main(["copytask", "--memory", "lstm", "--train-lengths", "1-2", "--test-lengths", "3", "--steps", "5",
                 "--batch-size", "4", "--hidden-size", "8", "--out", str(out), "--no-progress"]) == 0
    assert json.loads(out.read_text())
