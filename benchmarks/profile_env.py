"""Where tracerl's training time goes on a third-party env, against the env's own stepping rate.

    .venv/bin/python benchmarks/profile_env.py [--env popgym-RepeatPreviousEasy-v0] [--steps 32768] [--torch-profile]
    py-spy record -f raw -o prof.txt -r 200 -- .venv/bin/python benchmarks/profile_env.py --steps 65536

One process, one torch thread, tracerl's defaults (TraceRL(env=..., seed=0)), after a two-rollout warm-up:

1. the env's own random-action rate: gymnasium's plain SyncVectorEnv (SAME_STEP autoreset) of as many copies as the
   agent has sub-envs, 64 actions sampled beforehand, right before and right after training;
2. training env-steps/s over ``--steps`` (``learn``), and the same in process CPU time (less sensitive to other
   jobs on a shared machine than wall-clock);
3. the split of one rollout's time between collection and the PPO update (mean over 10 rollouts), and the update
   alone as an env-steps/s bound (what training would reach if collecting were free).

``--torch-profile`` adds torch.profiler's table of the ops that took the most CPU time in three rollouts and updates.
Needs the env's package (``pip install 'tracerl[popgym]'`` for POPGym ids).
"""

from __future__ import annotations

import argparse
import os
import time

import gymnasium
import torch
from gymnasium.vector import AutoresetMode


def env_rate(env_id: str, n_envs: int, steps: int = 16_384) -> tuple[float, float]:
    """(wall-clock, CPU-time) env-steps/s of ``n_envs`` plain copies stepped with random actions."""
    vec = gymnasium.make_vec(env_id, num_envs=n_envs, vectorization_mode="sync",
                             vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP})
    vec.reset(seed=0)
    vec.action_space.seed(0)
    actions = [vec.action_space.sample() for _ in range(64)]
    k = max(1, steps // n_envs)
    t, c = time.perf_counter(), time.process_time()
    for i in range(k):
        vec.step(actions[i % 64])
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    vec.close()
    return k * n_envs / wall, k * n_envs / max(cpu, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="popgym-RepeatPreviousEasy-v0")
    parser.add_argument("--steps", type=int, default=32_768, help="env steps of the timed learn() call")
    parser.add_argument("--torch-profile", action="store_true", help="print torch.profiler's top ops")
    args = parser.parse_args()
    if args.env.startswith("popgym-"):
        import popgym  # noqa: F401  (registers the ids)
    from tracerl import TraceRL
    from tracerl.data.rollout import RolloutBuffer

    torch.set_num_threads(1)
    agent = TraceRL(env=args.env, seed=0, verbose=0)
    n = agent.config.n_envs
    agent.learn(2 * n * agent.config.n_steps)
    before = env_rate(args.env, n)
    t, c = time.perf_counter(), time.process_time()
    agent.learn(args.steps)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    after = env_rate(args.env, n)
    env_wall, env_cpu = (before[0] + after[0]) / 2, (before[1] + after[1]) / 2
    print(f"{args.env}, {n} envs, load average {os.getloadavg()[0]:.2f}")
    print(f"  env alone (plain SyncVectorEnv, random actions): {before[0]:,.0f} before / {after[0]:,.0f} after "
          f"env-steps/s (CPU time: {env_cpu:,.0f})")
    print(f"  training: {args.steps / wall:,.0f} env-steps/s = {100 * args.steps / wall / env_wall:.1f} % of the env "
          f"alone (CPU time: {args.steps / cpu:,.0f} = {100 * args.steps / cpu / env_cpu:.1f} %)")

    collector, cfg = agent.collector, agent.config
    assert collector is not None
    buf = RolloutBuffer.allocate(agent.policy, cfg.n_steps, n, cfg.chunk_len, agent.device)
    t_collect = t_update = 0.0
    rollouts = 10
    with agent.torch_rng.active():
        for _ in range(rollouts):
            t0 = time.perf_counter()
            agent.policy.eval()
            collector.collect(buf)
            t1 = time.perf_counter()
            agent.policy.train()
            agent.ppo.update(buf, agent.minibatch_generator)
            t_collect += t1 - t0
            t_update += time.perf_counter() - t1
    per = cfg.n_steps * n
    print(f"  one rollout of {per:,} env steps: collection {1e3 * t_collect / rollouts:.1f} ms, update "
          f"{1e3 * t_update / rollouts:.1f} ms ({100 * t_update / (t_collect + t_update):.0f} % of the time); "
          f"the update alone bounds training at {per * rollouts / t_update:,.0f} env-steps/s")
    if args.torch_profile:
        from torch.profiler import ProfilerActivity, profile

        with agent.torch_rng.active(), profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for _ in range(3):
                agent.policy.eval()
                collector.collect(buf)
                agent.policy.train()
                agent.ppo.update(buf, agent.minibatch_generator)
        print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
