"""Does PPO learn the same with env runners? (issue 21) CueDelay delay 4, difficulty 1, 8 sub-envs, PPO-GRU at
tracerl's defaults, equal env steps: the in-process collector (runners=0) against 2 Ray runners on a local Ray
instance (num_cpus=2, runner_num_cpus=0.5). Success rate on 200 held-out episodes (evaluation seeds from 10,000),
per seed, and training env-steps/s.

    nice -n 10 python benchmarks/runner_learning.py [--steps 40000] [--seeds 0 1]
"""

from __future__ import annotations

import argparse
import json
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=40_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    import ray
    import torch

    from tracerl import TraceRL
    from tracerl.evaluation import evaluate

    torch.set_num_threads(1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    kwargs = {"delay": 4, "difficulty": 1}
    rows = []
    for seed in args.seeds:
        for name, extra in (("in-process", {}), ("2 Ray runners", dict(runners=2, runner_num_cpus=0.5))):
            agent = TraceRL(env="tracerl/CueDelay-v0", env_kwargs=kwargs, memory="gru", seed=seed, verbose=0, n_envs=8,
                            **extra)
            start = time.perf_counter()
            agent.learn(args.steps)
            seconds = time.perf_counter() - start
            result = evaluate(agent, "tracerl/CueDelay-v0", 200, env_kwargs=kwargs)
            rows.append({"collector": name, "seed": seed, "success": result.to_json().get("success_rate"),
                         "steps_per_s": args.steps / seconds})
            print(rows[-1], os.getloadavg(), flush=True)
    ray.shutdown()
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
