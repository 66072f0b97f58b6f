"""Candidate default settings of tracerl PPO-GRU, tried on POPGym Easy envs and on CueDelay (issue 22).

    .venv/bin/python benchmarks/defaults_sweep.py popgym --envs RepeatPrevious CountRecall --configs default ep8
    .venv/bin/python benchmarks/defaults_sweep.py cue --delays 16 64 --configs default combo --seeds 0 1 2

``popgym``: for each env and candidate, train ``--steps`` env steps (default 200,000, the issue's equal-step
budget) from ``TraceRL(env="popgym-<Name>Easy-v0", memory="gru", **candidate)`` and report the mean return of
``--episodes`` held-out episodes (``tracerl.evaluation.evaluate``, memory carried by ``predict``, seed 10,000 +
seed), with the greedy action (``return``) and with sampled actions (``return_stochastic``).

``cue``: env steps (and training seconds) until held-out success >= 95 % on 100 episodes of CueDelay
difficulty 1, checked every ``--check-every`` env steps (8,192), up to ``--budget``.

Every finished run is appended as one JSON line to ``--out`` and skipped when the script is run again, so a sweep
can be spread over sessions. Learning figures only: the training seconds it prints are wall-clock on whatever
else the machine was doing, so compare them only between runs made on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

CANDIDATES: dict[str, dict[str, Any]] = {
    "default": {},
    "old": {"reward_norm": False, "adam_impl": "single"},
    "h128": {"hidden_size": 128},
    "lr1e3": {"learning_rate": 1e-3},
    "ent01": {"ent_coef": 0.01},
    "ent003": {"ent_coef": 0.003},
    "lr3e4": {"learning_rate": 3e-4},
    "mlp": {"memory": "mlp"},
    "rn0": {"reward_norm": False},
    "mlprn0": {"memory": "mlp", "reward_norm": False},
    "sb3like": {"learning_rate": 3e-4, "n_steps": 256, "n_epochs": 10, "batch_size": 512},
    "lr1e3ent": {"learning_rate": 1e-3, "ent_coef": 0.01},
    "ep8": {"n_epochs": 8},
    "prev": {"use_prev_action": True, "use_prev_reward": True},
    "preva": {"use_prev_action": True},
    "noprev": {"use_prev_action": False},
    "headsobs": {"heads_read_obs": True},
    "noheadsobs": {"heads_read_obs": False},
    "squash": {"squash": True},
    "clip": {"squash": False},
    "lr3e3": {"learning_rate": 3e-3},
    "squashlr1e3": {"squash": True, "learning_rate": 1e-3},
    "lstm": {"memory": "lstm"},
    "prevent": {"use_prev_action": True, "use_prev_reward": True, "ent_coef": 0.01},
    "h128ep8": {"hidden_size": 128, "n_epochs": 8},
    "ep8b512": {"n_epochs": 8, "batch_size": 512},
    "ep8b1024": {"n_epochs": 8, "batch_size": 1024},
    "ep16b1024": {"n_epochs": 16, "batch_size": 1024},
    "ep32b1024": {"n_epochs": 32, "batch_size": 1024},
    "ep16kl": {"n_epochs": 16, "batch_size": -1, "target_kl": 0.02},
    "ep12b512": {"n_epochs": 12, "batch_size": 512},
    "rn": {"reward_norm": True},
    "ep8rn": {"n_epochs": 8, "reward_norm": True},
    "lite": {"n_epochs": 8, "batch_size": 512, "ent_coef": 0.01, "use_prev_action": True, "use_prev_reward": True},
    "combo": {"hidden_size": 128, "learning_rate": 1e-3, "ent_coef": 0.01, "n_epochs": 8,
              "use_prev_action": True, "use_prev_reward": True},
}
"""Named candidates: keyword arguments of ``TraceRL`` on top of its defaults."""

RESULTS = Path(__file__).resolve().parent / "bench_results" / "defaults_sweep.jsonl"


def _done(out: Path) -> list[dict[str, Any]]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def _record(out: Path, rec: dict[str, Any]) -> None:
    print(json.dumps(rec), flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        f.write(json.dumps(rec) + "\n")


def run_popgym(args: argparse.Namespace) -> None:
    import popgym  # noqa: F401  (registers popgym-* ids)

    from tracerl import TraceRL
    from tracerl.evaluation import evaluate

    done = {(r["env"], r["config"], r["seed"], r["steps"]) for r in _done(args.out)
            if r.get("part") == "popgym" and r.get("episodes", 30) == args.episodes}
    for seed in args.seeds:
        for env in args.envs:
            env_id = f"popgym-{env}Easy-v0"
            for name in args.configs:
                if (env, name, seed, args.steps) in done:
                    continue
                start = time.perf_counter()
                agent = TraceRL(env=env_id, seed=seed, verbose=0, **{"memory": "gru", **CANDIDATES[name]})
                agent.learn(total_timesteps=args.steps)
                train_s = time.perf_counter() - start
                result = evaluate(agent, env_id, args.episodes, seed=10_000 + seed)
                sampled = evaluate(agent, env_id, args.episodes, deterministic=False, seed=10_000 + seed)
                _record(args.out, {"part": "popgym", "env": env, "config": name, "seed": seed, "steps": args.steps,
                                   "return": float(result.mean_return), "train_s": train_s,
                                   "return_stochastic": float(sampled.mean_return), "episodes": args.episodes})


def run_cue(args: argparse.Namespace) -> None:
    from tracerl import TraceRL
    from tracerl.evaluation import evaluate

    done = {(r["delay"], r["config"], r["seed"]) for r in _done(args.out)
            if r.get("part") == "cue" and r.get("check_every", 8192) == args.check_every}
    for delay in args.delays:
        for name in args.configs:
            for seed in args.seeds:
                if (delay, name, seed) in done:
                    continue
                env_kwargs = {"delay": delay, "difficulty": 1}
                agent = TraceRL(env="tracerl/CueDelay-v0", env_kwargs=env_kwargs, seed=seed, verbose=0,
                                **{"memory": "gru", **CANDIDATES[name]})
                solved, train_s, success = None, 0.0, 0.0
                while agent.num_timesteps < args.budget:
                    start = time.perf_counter()
                    agent.learn(total_timesteps=args.check_every, reset_num_timesteps=False)
                    train_s += time.perf_counter() - start
                    success = evaluate(agent, "tracerl/CueDelay-v0", 100, seed=10_000 + seed,
                                       env_kwargs=env_kwargs).success_rate
                    if success >= 0.95:
                        solved = agent.num_timesteps
                        break
                _record(args.out, {"part": "cue", "delay": delay, "config": name, "seed": seed,
                                   "steps_to_95": solved, "train_s": train_s, "success": success,
                                   "check_every": args.check_every})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=("popgym", "cue"))
    parser.add_argument("--configs", nargs="+", default=["default", "combo"], choices=sorted(CANDIDATES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--envs", nargs="+", default=["RepeatPrevious", "PositionOnlyCartPole", "Autoencode",
                                                      "CountRecall"], help="POPGym names without 'Easy'")
    parser.add_argument("--steps", type=int, default=200_000, help="popgym: env steps per run")
    parser.add_argument("--episodes", type=int, default=30, help="popgym: held-out episodes per evaluation")
    parser.add_argument("--delays", nargs="+", type=int, default=[16, 64], help="cue: CueDelay delays")
    parser.add_argument("--budget", type=int, default=500_000, help="cue: env-step cap per run")
    parser.add_argument("--check-every", type=int, default=8192, help="cue: env steps between success checks")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    (run_popgym if args.part == "popgym" else run_cue)(args)


if __name__ == "__main__":
    main()
