"""Suites: built-in ones, TOML files, and every bad input named before anything runs."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import tiny_suite

from tracerl.bench import AgentEntry, available_agents, cue_delay, load_suite
from tracerl.bench.suites import SUITES, memory_length_suite, suite_from_toml
from tracerl.errors import ConfigError
from tracerl.memory import available_memories

GOOD = """
name = "mine"
seeds = [0, 1]
budget = 2048
agents = ["sb3-ppo", { name = "tracerl-gru", budget = 1024, kwargs = { learning_rate = 0.003 } }]
sweep = "delay"
[[envs]]
id = "tracerl/CueDelay-v0"
kwargs = { delay = 4, difficulty = 1 }
[[envs]]
id = "tracerl/CueDelay-v0"
kwargs = { delay = 8, difficulty = 1 }
budget = 4096
eval_every = 2048
[protocol]
every = 1024
stop_at_threshold = true
modes = ["deterministic"]
"""


def _write(tmp_path, text):
    path = tmp_path / "suite.toml"
    path.write_text(text)
    return path


def test_a_toml_suite_expands_into_runs_with_its_budgets(tmp_path):
    suite = load_suite(str(_write(tmp_path, GOOD)))
    runs = suite.runs()
    assert len(runs) == 2 * 2 * 2 and suite.name == "mine" and suite.sweep == "delay"
    budgets = {(r.agent, r.env.kwargs["delay"]): r.budget for r in runs}
    assert budgets == {("sb3-ppo", 4): 2048, ("tracerl-gru", 4): 1024, ("sb3-ppo", 8): 4096, ("tracerl-gru", 8): 1024}
    every = {r.env.kwargs["delay"]: r.effective_protocol.every for r in runs}
    assert every == {4: 1024, 8: 2048}
    gru = next(r for r in runs if r.agent == "tracerl-gru")
    assert gru.agent_kwargs == {"learning_rate": 0.003} and gru.protocol.modes == ("deterministic",)


def test_run_ids_are_stable_unique_and_change_with_the_config():
    a, b = tiny_suite().runs(), tiny_suite().runs()
    assert [r.run_id for r in a] == [r.run_id for r in b]
    assert len({r.run_id for r in a}) == len(a)
    assert tiny_suite(budget=2048).runs()[0].run_id != a[0].run_id
    other = tiny_suite(agents=(AgentEntry("tracerl-gru", kwargs={"hidden_size": 32}),)).runs()[0]
    assert other.run_id != a[0].run_id


def test_a_change_of_tracerl_defaults_makes_new_run_ids_and_leaves_the_baselines_ids(monkeypatch):
    import tracerl.agent_config as agent_config
    from tracerl.bench import suites

    suite = tiny_suite(agents=(AgentEntry("tracerl-gru"), AgentEntry("sb3-ppo")))
    before = {r.agent: r.run_id for r in suite.runs()}
    gru = next(r for r in suite.runs() if r.agent == "tracerl-gru")
    assert gru.identity()["agent_settings"]["defaults"]["policy"]["hidden_size"] == 64
    monkeypatch.setattr(suites, "_agent_settings_json", suites._agent_settings_json.__wrapped__)  # no cache
    monkeypatch.setattr(agent_config, "agent_configs", _with_policy_default(agent_config.agent_configs, hidden_size=65))
    after = {r.agent: r.run_id for r in suite.runs()}
    assert after["tracerl-gru"] != before["tracerl-gru"]
    assert after["sb3-ppo"] == before["sb3-ppo"]


def _with_policy_default(configs_of, **changed):
    def configs(algo):
        return [(name, cls, (lambda make=make: dataclasses.replace(make(), **changed)) if name == "policy" else make)
                for name, cls, make in configs_of(algo)]

    return configs


def test_agents_cover_both_baselines_and_every_registered_core():
    from tracerl.bench.agents import EPISODIC_AGENTS

    names = available_agents()
    cores = [f"tracerl-{core}" for core in available_memories()]
    assert names[:2] == ["sb3-ppo", "sb3-recurrentppo"]
    assert names[2:2 + len(cores)] == cores
    from tracerl.bench.agents import offpolicy_bench_algos

    assert set(offpolicy_bench_algos()) >= {"sac", "td3", "r2d2", "drqn"}  # tracerl-<algo>-<core> for the rest
    assert {f"tracerl-{a}-{c}" for a in offpolicy_bench_algos() for c in available_memories()} <= set(names)
    assert set(EPISODIC_AGENTS) <= set(names[2 + len(cores):])
    assert {a.name for a in memory_length_suite().agents} == set(names[:2 + len(cores)])  # PPO: one agent per core


def test_builtin_suites_validate():
    for name in SUITES:
        suite = load_suite(name)
        assert suite.runs() and suite.name == name
    delays = sorted({e.kwargs["delay"] for e in memory_length_suite().envs})
    assert delays[0] == 4 and delays[-1] == 4096


@pytest.mark.parametrize("text,message", [
    (GOOD.replace('sweep = "delay"', 'sweep = "delay"\ncolour = "red"'), "unknown key 'colour'"),
    (GOOD.replace('sweep = "delay"', 'sweep = "delay"\nescalate = "yes"'), "escalate = 'yes' is invalid"),
    (GOOD.replace('sweep = "delay"', 'escalate = true'), "escalate = True is invalid: needs sweep"),
    (GOOD.replace("budget = 2048", "budget = -5"), "budget = -5 is invalid"),
    (GOOD.replace("budget = 2048", 'budget = "lots"'), "budget = 'lots' is invalid"),
    (GOOD.replace("seeds = [0, 1]", "seeds = [0, -1]"), "seed -1 is invalid"),
    (GOOD.replace("seeds = [0, 1]", "seeds = []"), r"seeds = \[\] is invalid"),
    (GOOD.replace('"sb3-ppo", {', '"sb3-dqn", {'), "unknown agent 'sb3-dqn'; valid: sb3-ppo, sb3-recurrentppo, tracerl-"),
    (GOOD.replace('id = "tracerl/CueDelay-v0"\nkwargs = { delay = 4', 'id = "tracerl/Nope-v0"\nkwargs = { delay = 4'),
     "unknown env 'tracerl/Nope-v0'; valid: tracerl/CueDelay-v0"),
    (GOOD.replace("every = 1024", "every = -3"), r"protocol.every = -3 is invalid"),
    (GOOD.replace("every = 1024", "patience = 3"), "protocol: unknown key 'patience'"),
    (GOOD.replace("eval_every = 2048", "eval_every = 'often'"), "eval_every = 'often' is invalid"),
    (GOOD.replace("budget = 4096", "budget = 0"), r"envs\[1\]: budget = 0 is invalid"),
    (GOOD.replace("name = \"tracerl-gru\", budget = 1024", "name = \"tracerl-gru\", budget = 1.5"),
     r"agents\[1\]: budget = 1.5 is invalid"),
    ("budget = 10\nseeds = [0]\nagents = ['sb3-ppo']", "missing key 'envs'"),
    ("budget = [", "invalid TOML"),
])
def test_an_invalid_suite_file_names_the_key_and_value(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        suite_from_toml(_write(tmp_path, text))


def test_unknown_suite_lists_the_valid_ones(tmp_path):
    with pytest.raises(ConfigError, match="unknown suite 'fast'; valid: quick, popgym, memory-length, throughput"):
        load_suite("fast")
    with pytest.raises(ConfigError, match="not found"):
        load_suite(str(tmp_path / "missing.toml"))


def test_restrict_validates_before_anything_runs():
    suite = dataclasses.replace(load_suite("quick"), envs=tuple(cue_delay(d, 1) for d in (4, 8)),
                                compare_steps=True, time_budget=None)
    with pytest.raises(ConfigError, match="unknown agent 'gru'"):
        suite.restrict(agents=["gru"])
    with pytest.raises(ConfigError, match="seeds repeat"):
        suite.restrict(seeds=[0, 0])
    with pytest.raises(ConfigError, match="--budget = 0 is invalid"):
        suite.restrict(budget=0)
    with pytest.raises(ConfigError, match="valid: 4, 8"):
        suite.restrict(sweep_values=[32])
    small = suite.restrict(agents=["tracerl-gru"], seeds=[5], budget=999, sweep_values=[8])
    assert [(r.agent, r.seed, r.budget, r.env.kwargs["delay"]) for r in small.runs()] == [("tracerl-gru", 5, 999, 8)]


def test_step_budget_run_ids_do_not_change_with_the_time_budget_fields():
    # results files written before equal-time runs existed must still resume: no new keys in a step run's identity
    spec = tiny_suite().runs()[0]
    assert "time_budget" not in spec.identity() and "every_seconds" not in spec.identity()["protocol"]
    timed = dataclasses.replace(tiny_suite(), time_budget=30.0).runs()
    assert [r.comparison for r in timed] == ["steps", "steps", "time", "time"]
    assert timed[2].identity()["time_budget"] == 30.0 and ".t30s.s0." in timed[2].run_id
    assert timed[0].run_id == spec.run_id


def test_a_suite_can_be_run_in_parts_by_env_and_comparison():
    suite = load_suite("popgym")
    part = suite.restrict(envs=["countrecall", "RepeatPrevious"], comparisons=["time"], agents=["sb3-recurrentppo"],
                          seeds=[0])
    assert [(r.env.id, r.comparison) for r in part.runs()] == [("popgym-RepeatPreviousEasy-v0", "time"),
                                                               ("popgym-CountRecallEasy-v0", "time")]
    # the part's runs are the same runs (same ids) as in the whole suite, so they are reused
    assert {r.run_id for r in part.runs()} <= {r.run_id for r in suite.runs()}
    with pytest.raises(ConfigError, match="--comparison"):
        suite.restrict(comparisons=["wallclock"])
    with pytest.raises(ConfigError, match="compare_steps = false needs time_budget"):
        dataclasses.replace(suite, compare_steps=False, time_budget=None).validate()


def test_an_env_name_selects_that_env_and_not_the_longer_names_that_contain_it():
    suite = load_suite("popgym")
    labels = lambda patterns: [e.label for e in suite.restrict(envs=patterns).envs]  # noqa: E731
    assert labels(["PositionOnlyCartPole"]) == ["popgym-PositionOnlyCartPoleEasy"]
    assert labels(["noisy"]) == ["popgym-NoisyPositionOnlyCartPoleEasy", "popgym-NoisyPositionOnlyPendulumEasy"]
    pendulums = ["popgym-NoisyPositionOnlyPendulumEasy", "popgym-PositionOnlyPendulumEasy"]
    assert sorted(labels(["OnlyPendulum"])) == pendulums  # no part starts with it: any env containing it
    assert labels(["popgym-MineSweeperEasy-v0"]) == ["popgym-MineSweeperEasy"]


def test_a_toml_suite_with_a_time_budget_and_scores(tmp_path):
    text = GOOD.replace('sweep = "delay"\n', 'sweep = "delay"\ntime_budget = 12.5\ncompare_steps = false\n')
    text = text.replace("budget = 4096\n", 'budget = 4096\nscore = "return"\n')
    suite = load_suite(str(_write(tmp_path, text)))
    assert suite.comparisons == ("time",) and {r.time_budget for r in suite.runs()} == {12.5}
    assert [e.score for e in suite.envs] == ["success", "return"]
    with pytest.raises(ConfigError, match="score = 'iqm' is invalid"):
        suite_from_toml(_write(tmp_path, text.replace('score = "return"', 'score = "iqm"')))
    with pytest.raises(ConfigError, match="time_budget = -1 is invalid"):
        suite_from_toml(_write(tmp_path, text.replace("time_budget = 12.5", "time_budget = -1")))


def test_a_popgym_env_without_popgym_says_how_to_install_it(monkeypatch):
    import sys

    from tracerl.bench.envs import ensure_registered

    monkeypatch.setitem(sys.modules, "popgym", None)  # import popgym -> ImportError
    with pytest.raises(ConfigError, match=r"popgym-CountRecallEasy-v0.*pip install 'tracerl\[popgym\]'"):
        ensure_registered("popgym-CountRecallEasy-v0")
    ensure_registered("tracerl/CueDelay-v0")  # tracerl's own ids need nothing else


def test_equal_time_runs_on_the_cpu_clock_are_other_runs_than_on_the_wall_clock():
    # a CPU-time run measures something else than a wall-clock run of the same budget: it must never be reused
    # as one (nor the reverse), while wall-clock ids stay what they were
    wall = dataclasses.replace(tiny_suite(), time_budget=30.0).runs()
    cpu = dataclasses.replace(tiny_suite(), time_budget=30.0, time_clock="cpu").runs()
    assert [r.run_id for r in cpu[:2]] == [r.run_id for r in wall[:2]]  # the equal-steps runs are the same runs
    assert "time_clock" not in wall[2].identity() and cpu[2].identity()["time_clock"] == "cpu"
    assert ".t30cpu.s0." in cpu[2].run_id and cpu[2].run_id != wall[2].run_id
    assert load_suite("popgym").restrict(time_clock="cpu").time_clock == "cpu"


@pytest.mark.faults("a suite's time_clock is not wall or cpu | ConfigError naming the field and the choices | nothing")
def test_an_unknown_time_clock_is_a_config_error():
    with pytest.raises(ConfigError, match="time_clock = 'gpu' is invalid"):
        dataclasses.replace(tiny_suite(), time_budget=30.0, time_clock="gpu").validate()
