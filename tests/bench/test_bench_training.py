"""train_and_evaluate with scripted trainers: steps-to-threshold, confirmation, early stop, held-out seeds."""

from __future__ import annotations

import numpy as np
import pytest

from tracerl.bench.agents import Trainer
from tracerl.bench.envs import cue_delay
from tracerl.bench.protocol import EvalProtocol, eval_seed
from tracerl.bench.training import train_and_evaluate


class CueOracle:
    """Remembers the cue (the signal when cue_flag is set) in its state and answers it: always right."""

    def __init__(self, remember: bool = True) -> None:
        self.remember = remember
        self.num_timesteps = 0

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        obs = np.asarray(obs)
        cue = np.zeros(len(obs)) if state is None or not self.remember else np.asarray(state).copy()
        cue = np.where(obs[:, 1] > 0.5, obs[:, 0], cue if self.remember else obs[:, 0])
        return (cue > 0).astype(np.int64), cue


class ScriptedTrainer(Trainer):
    """'Trains' in steps of 256 env steps and turns into the oracle at ``learns_at`` steps."""

    def __init__(self, learns_at: int | None) -> None:
        super().__init__(CueOracle(remember=False))
        self.learns_at = learns_at
        self.hook_calls: list[int] = []

    def train(self, budget, on_update):
        while self.model.num_timesteps < budget:
            self.model.num_timesteps += 256
            if self.learns_at is not None and self.model.num_timesteps >= self.learns_at:
                self.model.remember = True
            self.hook_calls.append(self.model.num_timesteps)
            if on_update(self.model.num_timesteps) is False:
                break


PROTOCOL = EvalProtocol(episodes=32, every=512, final_episodes=64)


def test_steps_to_threshold_is_the_first_evaluation_at_it_and_training_stops_there():
    trainer = ScriptedTrainer(learns_at=1000)
    stop = EvalProtocol(episodes=32, every=512, final_episodes=64, stop_at_threshold=True)
    m = train_and_evaluate(lambda: trainer, cue_delay(8, 1), seed=0, budget=10_000, protocol=stop)
    assert m.steps_to_threshold == 1024  # evaluations at 512 (forgetful: chance) and 1024 (oracle)
    assert m.train_steps == 1024 and trainer.hook_calls[-1] == 1024
    assert m.final["deterministic"]["success_rate"] == 1.0 and m.final["deterministic"]["episodes"] == 64
    assert m.final["stochastic"]["success_rate"] == 1.0
    assert [(p.steps, p.success) for p in m.curve][1:] == [(1024, 1.0), (1024, 1.0), (1024, 1.0)]  # +confirm, final
    assert m.curve[0].success < 0.95 and m.seconds_to_threshold is not None


def test_without_stop_training_uses_the_whole_budget_and_a_forgetful_agent_never_reaches_it():
    never = train_and_evaluate(lambda: ScriptedTrainer(learns_at=None), cue_delay(8, 1), seed=0, budget=2048,
                               protocol=PROTOCOL)
    assert never.train_steps == 2048 and never.steps_to_threshold is None
    assert [p.steps for p in never.curve] == [512, 1024, 1536, 2048, 2048]
    assert 0.2 < never.final["deterministic"]["success_rate"] < 0.8
    late = train_and_evaluate(lambda: ScriptedTrainer(learns_at=256), cue_delay(8, 1), seed=0, budget=2048,
                              protocol=PROTOCOL)
    assert late.train_steps == 2048 and late.steps_to_threshold == 512


def test_final_evaluation_alone_counts_when_there_are_no_periodic_ones():
    final_only = EvalProtocol(every=0, final_episodes=32, modes=("deterministic",))
    m = train_and_evaluate(lambda: ScriptedTrainer(learns_at=0), cue_delay(4, 0), seed=3, budget=1000,
                           protocol=final_only)
    assert m.steps_to_threshold == 1024 and set(m.final) == {"deterministic"} and len(m.curve) == 1


def test_evaluation_seeds_are_held_out_and_distinct():
    seeds = {eval_seed(s, i) + k for s in range(5) for i in range(50) for k in range(16)}
    assert len(seeds) == 5 * 50 * 16 and min(seeds) >= 1_000_000


@pytest.mark.parametrize("field,value", [("episodes", 0), ("every", -1), ("threshold", 1.5),
                                         ("modes", ("greedy",)), ("confirm", "yes")])
def test_protocol_validation_names_the_field_and_value(field, value):
    import dataclasses

    from tracerl.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"protocol\.{field} = {value!r}".replace("(", r"\(").replace(")", r"\)")):
        dataclasses.replace(EvalProtocol(), **{field: value}).validate()


class TimedTrainer(ScriptedTrainer):
    """A ScriptedTrainer whose every 256-step update takes one second of a fake clock."""

    def __init__(self, now: list[float]) -> None:
        super().__init__(learns_at=None)
        self.now = now

    def train(self, budget, on_update):
        def hook(steps):
            self.now[0] += 1.0
            return on_update(steps)

        return super().train(budget, hook)


def test_an_equal_time_budget_stops_the_agent_at_its_time_and_records_the_steps_it_reached():
    from tracerl.bench.protocol import PausableClock

    now = [0.0]
    timed = EvalProtocol(episodes=16, every=0, every_seconds=2.0, final_episodes=16, modes=("deterministic",))
    trainer = TimedTrainer(now)
    m = train_and_evaluate(lambda: trainer, cue_delay(4, 1), seed=0, budget=1_000_000, protocol=timed,
                           time_budget=3.0, clock=PausableClock(timer=lambda: now[0]))
    assert m.stopped_by == "time" and m.time_budget == 3.0
    assert m.train_steps == 768 and trainer.hook_calls == [256, 512, 768] and m.train_seconds == 3.0
    # evaluated once by time (at 2 s of training, 512 steps), then the final evaluation at the stop
    assert [(p.steps, p.train_seconds) for p in m.curve] == [(512, 2.0), (768, 3.0)]
    untimed = train_and_evaluate(lambda: ScriptedTrainer(learns_at=None), cue_delay(4, 1), seed=0, budget=1024,
                                 protocol=timed)
    assert untimed.stopped_by == "budget" and untimed.time_budget is None and untimed.train_steps == 1024


def test_a_run_stopped_at_the_threshold_says_so():
    stop = EvalProtocol(episodes=32, every=512, final_episodes=64, stop_at_threshold=True)
    m = train_and_evaluate(lambda: ScriptedTrainer(learns_at=0), cue_delay(4, 1), seed=0, budget=10_000,
                           protocol=stop)
    assert m.stopped_by == "threshold" and m.train_steps == 512


def test_an_env_scored_by_return_is_neither_stopped_nor_called_solved_by_the_success_threshold():
    # Without info["success"] a held-out success is a positive return: a threshold on it would stop a POPGym run
    # (scored by return) as soon as 95 % of episodes end above 0, long before the return is good.
    import dataclasses

    stop = EvalProtocol(episodes=32, every=512, final_episodes=64, stop_at_threshold=True)
    env = dataclasses.replace(cue_delay(4, 1), score="return")
    m = train_and_evaluate(lambda: ScriptedTrainer(learns_at=0), env, seed=0, budget=2048, protocol=stop)
    assert m.stopped_by == "budget" and m.train_steps == 2048
    assert m.steps_to_threshold is None and m.seconds_to_threshold is None


class SleepyTrainer(ScriptedTrainer):
    """Waits (no CPU) a little at every update: 256 env steps per update, 10 updates at most."""

    def train(self, budget, on_update):
        import time

        while self.model.num_timesteps < min(budget, 2560):
            time.sleep(0.02)
            self.model.num_timesteps += 256
            if not on_update(self.model.num_timesteps):
                return


def test_the_cpu_clock_counts_only_the_runs_own_cpu_time_so_waiting_does_not_use_up_the_budget():
    # On a machine shared with other jobs a run waits for a core; CPU time counts what it computed, not the wait.
    import time

    from tracerl.bench.protocol import PausableClock, training_clock

    protocol = EvalProtocol(episodes=8, every=0, final_episodes=8, modes=("deterministic",))
    on_wall = train_and_evaluate(lambda: SleepyTrainer(learns_at=None), cue_delay(4, 1), seed=0, budget=10_000,
                                 protocol=protocol, time_budget=0.05, clock=training_clock("wall"))
    on_cpu = train_and_evaluate(lambda: SleepyTrainer(learns_at=None), cue_delay(4, 1), seed=0, budget=10_000,
                                protocol=protocol, time_budget=0.05, clock=training_clock("cpu"))
    assert on_wall.stopped_by == "time" and on_wall.train_steps < 2560
    assert on_cpu.stopped_by == "budget" and on_cpu.train_steps == 2560  # 10 x 20 ms asleep: far below 50 ms of CPU
    assert isinstance(training_clock("cpu"), PausableClock)
    clock = training_clock("cpu")
    clock.start()
    t0 = time.process_time()
    while time.process_time() - t0 < 0.05:
        pass
    assert clock.elapsed >= 0.04  # busy time counts


@pytest.mark.faults("an equal-time run on the CPU clock whose envs step in subprocesses | ConfigError naming the run "
                    "and the subprocesses before training | nothing (the run is recorded as failed)")
def test_the_cpu_clock_refuses_an_agent_whose_envs_step_in_subprocesses():
    import dataclasses
    import multiprocessing
    import time

    from tracerl.bench.execute import _build_checked
    from tracerl.bench.suites import AgentEntry, Suite
    from tracerl.errors import ConfigError

    children = []

    class SubprocessAgent:
        def build(self, env, seed, budget, **kwargs):
            child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(30,), daemon=True)
            child.start()
            children.append(child)
            return "trainer"

    suite = Suite(name="t", description="", agents=(AgentEntry("tracerl-gru"),), envs=(cue_delay(4, 1),), seeds=(0,),
                  budget=1024, time_budget=5.0, compare_steps=False)
    try:
        wall_spec = suite.runs()[0]
        assert _build_checked(SubprocessAgent(), wall_spec) == "trainer"  # the wall clock sees every process
        cpu_spec = dataclasses.replace(suite, time_clock="cpu").runs()[0]
        with pytest.raises(ConfigError, match=r"time_clock 'cpu' counts only this process's CPU time.*subprocesses"):
            _build_checked(SubprocessAgent(), cpu_spec)
    finally:
        for child in children:
            child.kill()
            child.join()
