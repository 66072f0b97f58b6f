"""``tracerl bench``: listing, errors for bad names / files / budgets / seeds, and a tiny end-to-end run."""

from __future__ import annotations

import json

import pytest

from tracerl.bench import available_agents
from tracerl.bench.cli import parse_int_list
from tracerl.cli import main
from tracerl.errors import ConfigError


def _run(capsys, *argv):
    code = main(["bench", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list_shows_every_suite_and_agent(capsys):
    code, out, _ = _run(capsys, "--list")
    assert code == 0
    for name in ["quick", "popgym", "memory-length", "throughput", *available_agents()]:
        assert name in out


def test_help_documents_the_runner_flags(capsys):
    with pytest.raises(SystemExit) as info:
        main(["bench", "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    for flag in ("--workers", "--backend", "--ray-address", "--seeds", "--out", "--fail-fast", "--list", "--fresh",
                 "--retry-failed", "--budget", "--agents", "--delays", "--verbose", "--escalate", "--no-escalate",
                 "--envs", "--comparison", "--time-budget"):
        assert flag in out


@pytest.mark.parametrize("argv,message", [
    (["fastest"], "unknown suite 'fastest'; valid: quick, popgym, memory-length, throughput"),
    (["quick", "--agents", "tracerl-gru,ppo"], "unknown agent 'ppo'; valid: sb3-ppo"),
    (["quick", "--seeds", "0,x"], "--seeds '0,x' is invalid"),
    (["quick", "--seeds", "2,2"], "seeds repeat"),
    (["quick", "--budget", "-1"], "--budget = -1 is invalid"),
    (["quick", "--workers", "0"], "--workers 0 is invalid"),
    (["quick", "--eval-episodes", "0"], "--eval-episodes 0 is invalid"),
    (["quick", "--delays", "4096"], "no env of suite 'quick' has delay in it; valid: 16"),
    (["quick", "--envs", "Pong"], "--envs 'Pong': no env of suite 'quick' matches it"),
    (["quick", "--time-budget", "0"], "--time-budget = 0.0 is invalid"),
    (["memory-length", "--comparison", "time"], "--comparison time: suite 'memory-length' has no time budget"),
    (["quick", "--escalate"], "--escalate: suite 'quick' has no sweep keyword"),
])
def test_bad_input_is_an_error_naming_it_before_anything_runs(capsys, tmp_path, argv, message):
    code, out, err = _run(capsys, *argv, "--out", str(tmp_path / "out"))
    assert code == 2 and message in err
    assert not (tmp_path / "out").exists()


def test_an_invalid_suite_file_is_a_cli_error(capsys, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('budget = 100\nseeds = [0]\nagents = ["sb3-ppo"]\nenvs = [{ id = "tracerl/CueDelay-v0", '
                    'kwargs = { delay = 4 }, bugdet = 5 }]\n')
    code, _, err = _run(capsys, str(path))
    assert code == 2 and "unknown key 'bugdet'" in err and "bad.toml" in err


def test_parse_int_list():
    assert parse_int_list("0-2,5", "--seeds") == [0, 1, 2, 5]
    with pytest.raises(ConfigError):
        parse_int_list("3-1", "--seeds")


def test_a_tiny_suite_runs_end_to_end_and_resumes(capsys, tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text('name = "tiny"\nseeds = [0]\nbudget = 1024\nagents = ["tracerl-gru"]\n'
                    '[[envs]]\nid = "tracerl/CueDelay-v0"\nkwargs = { delay = 4, difficulty = 0 }\n'
                    '[protocol]\nevery = 0\nfinal_episodes = 16\n')
    out = tmp_path / "out"
    args = [str(path), "--out", str(out), "--backend", "inline", "--no-progress", "--bootstrap-reps", "100"]
    code, stdout, _ = _run(capsys, *args)
    assert code == 0 and "1 runs ran, 0 already finished" in stdout and "tracerl-gru" in stdout
    for name in ("runs.jsonl", "runs.csv", "report.md", "suite.json", "learning_curves.png",
                 "aggregate_intervals.png"):
        assert (out / name).exists()
    assert json.loads((out / "suite.json").read_text())["name"] == "tiny"
    code, stdout, _ = _run(capsys, *args)
    assert code == 0 and "0 runs ran, 1 already finished" in stdout


def test_report_only_reports_the_finished_part_and_runs_nothing(capsys, tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text('name = "tiny"\nseeds = [0]\nbudget = 1024\nagents = ["tracerl-gru"]\n'
                    '[[envs]]\nid = "tracerl/CueDelay-v0"\nkwargs = { delay = 4, difficulty = 0 }\n'
                    '[protocol]\nevery = 0\nfinal_episodes = 16\n')
    out = tmp_path / "out"
    common = ["--out", str(out), "--backend", "inline", "--no-progress", "--bootstrap-reps", "100"]
    assert _run(capsys, str(path), *common)[0] == 0
    (out / "report.md").unlink()
    code, stdout, _ = _run(capsys, str(path), *common, "--seeds", "0,1", "--report-only")
    assert code == 0 and "0 runs ran, 1 already finished" in stdout
    assert "- runs: 1 ok, 0 failed, of 2" in (out / "report.md").read_text()
    assert len((out / "runs.jsonl").read_text().splitlines()) == 1
    code, _, err = _run(capsys, str(path), *common, "--report-only", "--fresh")
    assert code == 2 and "--report-only" in err


@pytest.mark.parametrize("agent,env", [("tracerl-r2d2-gru", 'id = "tracerl/CueDelay-v0"\nkwargs = { delay = 4 }'),
                                       ("tracerl-sac-gru", 'id = "tracerl/CountWindow-v0"\n'
                                                           'kwargs = { horizon = 3, episode_length = 12 }')])
def test_off_policy_bench_agents_run_a_tiny_suite_end_to_end(capsys, tmp_path, agent, env):
    """Issue 17 item 5d: tracerl-<algo>-<core> agents for the off-policy algorithms, usable in any suite."""
    assert agent in available_agents() and "tracerl-td3-lstm" in available_agents()
    path = tmp_path / "tiny.toml"
    path.write_text(f'name = "tiny"\nseeds = [0]\nbudget = 256\n'
                    f'[[agents]]\nname = "{agent}"\nkwargs = {{ n_envs = 2, learning_starts = 32, buffer_size = 512, '
                    f'seq_len = 4, batch_size = 8, hidden_size = 16 }}\n'
                    f'[[envs]]\n{env}\n[protocol]\nevery = 0\nfinal_episodes = 8\n')
    out = tmp_path / "out"
    code, stdout, _ = _run(capsys, str(path), "--out", str(out), "--backend", "inline", "--no-progress",
                           "--bootstrap-reps", "100")
    assert code == 0 and "1 runs ran" in stdout and agent in stdout
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert len(runs) == 1 and runs[0]["agent"] == agent and runs[0].get("status", "ok") == "ok"
    assert runs[0]["metrics"]["train_steps"] >= 256 and runs[0]["metrics"]["final"]


def test_an_off_policy_bench_agent_on_the_wrong_action_space_fails_its_run_with_the_reason(tmp_path):
    from tracerl.bench.agents import get_agent
    from tracerl.bench.envs import cue_delay

    with pytest.raises(ConfigError, match="algo='td3' acts in Box action spaces"):
        get_agent("tracerl-td3-gru").build(cue_delay(4), 0)
