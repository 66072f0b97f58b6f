"""Env runners on a local Ray instance (issue 21): scaling with a slow env, and the Ray path's overhead.

1. Scaling: ``sleepy_env:SleepyCue-v0`` (CueDelay whose step sleeps 5 ms; sub-envs stepped one after the other in
   each runner, ``env_vectorization="sync"``) with 2 sub-envs per runner and 1, 2, 4, 8 runners
   (``runner_num_cpus=0.25``). Training env-steps/s over iterations 2.. (actor start-up excluded), against the
   ideal ``N x`` the 1-runner rate, and the learner's share of an iteration (everything but gathering rollouts).
2. Overhead at 1 runner on a fast env (tracerl/CueDelay-v0, natively batched, 8 envs): the usual in-process
   collector (runners=0), one local runner and one Ray runner, back to back in this process.

    nice -n 10 python benchmarks/runner_scaling.py [--iters 6] [--out bench_results/runner_scaling.json]

``--offpolicy``: the same two measurements for asynchronous R2D2-GRU with off-policy runners and the replay in its
own Ray actor (tracerl.distributed.offpolicy): env-steps/s over ``--offpolicy-steps`` env steps after a warm-up
(every runner started and the learner updating), the learner's share of the wall time (its updates) and its
updates/s, and the mean policy lag. The learner does one update per 64 env steps at every N (``train_freq`` 32 / N
vector steps of the 2N sub-envs), so every run asks the same learner work per env step; the fast-env overhead
rows use 8 sub-envs and ``train_freq`` 4 (one update per 32 env steps).

    nice -n 10 python benchmarks/runner_scaling.py --offpolicy [--offpolicy-steps 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def timed_run(iters: int, **kwargs) -> dict:
    """Train ``iters`` PPO iterations; env-steps/s and learner share over iterations 2..iters."""
    from tracerl import TraceRL

    agent = TraceRL(verbose=0, seed=0, hidden_size=32, n_steps=32, bptt_len=16, n_epochs=4, **kwargs)
    marks: list[tuple[float, float]] = []  # (time, seconds spent gathering rollouts) after each iteration

    def callback(a, stats):
        c = a.collector
        marks.append((time.perf_counter(), getattr(c, "collect_seconds", 0.0)))

    per_iter = agent.learner.steps_per_iteration
    agent.learn(iters * per_iter, callback=callback)
    span = marks[-1][0] - marks[0][0]
    gather = sum(m[1] for m in marks[1:])
    return {"steps_per_s": (len(marks) - 1) * per_iter / span, "learner_share": 1.0 - gather / span,
            "per_iter": per_iter}


OFF = dict(algo="r2d2", memory="gru", hidden_size=32, seq_len=8, burn_in=0, state_stride=8, batch_size=32,
           learning_starts=200, buffer_size=20_000, runner_steps=16, train_freq=4)


def timed_offpolicy(steps: int, **kwargs) -> dict:
    """R2D2 with off-policy runners (or the in-process collector): env-steps/s over ``steps`` env steps after a
    warm-up, the learner's share of that time and its updates/s, and the policy lag."""
    from tracerl import TraceRL

    agent = TraceRL(verbose=0, seed=0, **{**OFF, **kwargs})
    runners = kwargs.get("runners", 0)
    warm = max(400, 2 * runners * agent.learner.steps_per_iteration)  # every runner has delivered, updates run
    agent.learn(warm)
    group = agent.collector
    upd0, sec0 = agent.algorithm.n_updates, getattr(group, "update_seconds", 0.0)
    lag0 = len(getattr(group, "lag_history", ()))
    start = time.perf_counter()
    agent.learn(steps, reset_num_timesteps=False)
    span = time.perf_counter() - start
    out = {"steps_per_s": steps / span, "updates_per_s": (agent.algorithm.n_updates - upd0) / span, "seconds": span}
    if runners:
        out["learner_share"] = (group.update_seconds - sec0) / span
        lags = list(group.lag_history)[lag0:]
        out["lag_mean"] = sum(lags) / max(len(lags), 1)
        out["lag_max"] = max(lags) if lags else 0
    return out


def main_offpolicy(args) -> None:
    import ray
    import torch

    import sleepy_env  # noqa: F401

    torch.set_num_threads(1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    out: dict = {"load_before": os.getloadavg(), "scaling": {}, "overhead": {}}
    for n in args.runners:
        # one update per 64 env steps whatever N (train_freq counts vector steps of all 2N sub-envs)
        r = timed_offpolicy(args.offpolicy_steps, env="sleepy_env:SleepyCue-v0", env_kwargs={"delay": 4},
                            n_envs=2 * n, runners=n, runner_backend="ray", runner_num_cpus=0.25,
                            train_freq=max(1, 32 // n))
        out["scaling"][n] = r
        print(f"off-policy runners={n}: {r}", flush=True)
        import gc

        gc.collect()  # free the runners' actors (and their CPUs) before the next run
    for name, kw in (("in_process", dict(runners=0)), ("local_runner", dict(runners=1, runner_backend="local")),
                     ("ray_runner", dict(runners=1, runner_backend="ray"))):
        r = timed_offpolicy(args.offpolicy_steps, env="tracerl/CueDelay-v0", env_kwargs={"delay": 4}, n_envs=8, **kw)
        out["overhead"][name] = r
        print(f"off-policy fast env, {name}: {r}", flush=True)
    out["load_after"] = os.getloadavg()
    ray.shutdown()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iters", type=int, default=6)
    parser.add_argument("--runners", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--out", default=None)
    parser.add_argument("--offpolicy", action="store_true", help="R2D2 with off-policy runners instead of PPO")
    parser.add_argument("--offpolicy-steps", type=int, default=3000)
    args = parser.parse_args()
    if args.out is None:
        name = "runner_scaling_offpolicy.json" if args.offpolicy else "runner_scaling.json"
        args.out = str(HERE / "bench_results" / name)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)
    sys.path.insert(0, str(HERE))
    if args.offpolicy:
        main_offpolicy(args)
        return
    import ray
    import torch

    import sleepy_env  # noqa: F401  (registers SleepyCue-v0 here; Ray's workers import it by the id)

    torch.set_num_threads(1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    out: dict = {"load_before": os.getloadavg(), "scaling": {}, "overhead": {}}
    for n in args.runners:
        r = timed_run(args.iters, env="sleepy_env:SleepyCue-v0", env_kwargs={"delay": 4}, n_envs=2 * n, runners=n,
                      runner_backend="ray", runner_num_cpus=0.25, env_vectorization="sync")
        out["scaling"][n] = r
        print(f"runners={n}: {r['steps_per_s']:.0f} env-steps/s, learner share {r['learner_share']:.2f}", flush=True)
    for name, kw in (("in_process", dict(runners=0)), ("local_runner", dict(runners=1, runner_backend="local")),
                     ("ray_runner", dict(runners=1, runner_backend="ray"))):
        r = timed_run(args.iters, env="tracerl/CueDelay-v0", env_kwargs={"delay": 4}, n_envs=8, **kw)
        out["overhead"][name] = r
        print(f"fast env, {name}: {r['steps_per_s']:.0f} env-steps/s", flush=True)
    out["load_after"] = os.getloadavg()
    ray.shutdown()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
