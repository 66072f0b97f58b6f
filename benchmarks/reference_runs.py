"""Reference runs: fixed-seed short trainings reduced to hashes, so a refactor can show that behaviour did not move.

Each run trains a tiny agent for a few thousand env steps (seconds each) and is reduced to two sha256 digests:

* ``params``: every tensor of the agent's trained networks (``state_dict`` entries in sorted key order, raw bytes,
  with each key, dtype and shape), i.e. the final parameters;
* ``metrics``: the training statistics handed to the ``learn`` callback after every update (PPO) or every block
  of env steps (off-policy), as JSON with sorted keys and ``repr`` floats, plus the episode returns the collector
  recorded. Wall-clock figures (``time/fps``) are never part of it.

    python benchmarks/reference_runs.py --write    # record benchmarks/reference_hashes.json
    python benchmarks/reference_runs.py --check    # compare: one line per run, exit code 1 on a mismatch
    python benchmarks/reference_runs.py --check ppo_gru sac   # only these runs

Hashes are bit-exact and so depend on the torch version and the CPU; the JSON records both. Runs that are not
bit-reproducible across processes are listed in ``EXCLUDED`` with the reason, not hashed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
HASHES = HERE / "reference_hashes.json"

CUE = "tracerl/CueDelay-v0"
CUE_KW = {"delay": 6, "difficulty": 1}
CW = "tracerl/CountWindow-v0"
CW_KW = {"horizon": 3, "episode_length": 12}

EXCLUDED: dict[str, str] = {}
"""Runs left out of the reference, with the reason (none at the moment; R2D2 runs on CueDelay here, not on
GoalLine, whose HER runs are known not to be bit-reproducible across processes)."""


def _params_modules(agent: Any) -> dict[str, torch.nn.Module]:
    """The agent's trained networks by name (the PPO family: policy, RND, reward normalizer; off-policy: every
    network of the algorithm, targets included)."""
    from tracerl.algos.registry import available_algos

    if agent.algo in available_algos("off_policy"):
        return dict(agent.algorithm.modules())
    out: dict[str, torch.nn.Module] = {"policy": agent.policy}
    for name in ("rnd", "reward_normalizer"):
        module = getattr(agent, name, None)
        if module is not None:
            out[name] = module
    return out


def params_hash(agent: Any) -> str:
    """sha256 over every network tensor (sorted ``<module>.<key>``, then its dtype, shape and bytes)."""
    h = hashlib.sha256()
    tensors: dict[str, torch.Tensor] = {}
    for name, module in _params_modules(agent).items():
        tensors.update({f"{name}.{k}": v for k, v in module.state_dict().items()})
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous()
        h.update(key.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return _jsonable(value.tolist())
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    return repr(value)


class Recorder:
    """A ``learn`` callback that keeps every stats dict it is handed."""

    def __init__(self) -> None:
        self.stats: list[Any] = []

    def __call__(self, agent: Any, stats: dict[str, float]) -> None:
        self.stats.append(_jsonable(stats))


def metrics_hash(recorder: Recorder, agent: Any) -> str:
    stats = getattr(getattr(agent, "collector", None), "stats", None)
    returns = [repr(float(r)) for r in getattr(stats, "returns", [])] if stats is not None else []
    payload = {"callback_stats": recorder.stats, "episode_returns": returns, "num_timesteps": agent.num_timesteps}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


# -- the runs ------------------------------------------------------------------------------------------------------
def _ppo(memory: str, steps: int = 2048, **kw: Any) -> Callable[[], tuple[Any, Recorder]]:
    def run() -> tuple[Any, Recorder]:
        from tracerl import TraceRL

        agent = TraceRL(env=CUE, env_kwargs=CUE_KW, memory=memory, seed=0, verbose=0, n_envs=4, n_steps=32,
                        hidden_size=16, **kw)
        rec = Recorder()
        agent.learn(steps, callback=rec)
        return agent, rec

    return run


def _strategic() -> tuple[Any, Recorder]:
    from tracerl import StrategicMemoryBuffer, StrategicMemoryTransformerPolicy, TraceRL

    torch.manual_seed(0)  # the memory object is built before TraceRL seeds its own streams
    mem = StrategicMemoryBuffer(obs_dim=3, action_dim=1, mem_dim=8, max_entries=4)
    agent = TraceRL(StrategicMemoryTransformerPolicy, CUE, memory=mem, env_kwargs=CUE_KW, seed=0, verbose=0,
                    n_envs=4, n_steps=16, memory_learn_retention=True)
    rec = Recorder()
    agent.learn(1024, callback=rec)
    return agent, rec


_OFF_COMMON = dict(seed=0, verbose=0, n_envs=4, hidden_size=16, seq_len=4, burn_in=2, state_stride=2,
                   learning_starts=200, buffer_size=2000, batch_size=8)


def _offpolicy(algo: str, env: str, env_kwargs: dict[str, Any], steps: int = 2000,
               **kw: Any) -> Callable[[], tuple[Any, Recorder]]:
    def run() -> tuple[Any, Recorder]:
        from tracerl import TraceRL

        agent = TraceRL(env=env, env_kwargs=env_kwargs, algo=algo, **{**_OFF_COMMON, **kw})
        rec = Recorder()
        agent.learn(steps, callback=rec)
        return agent, rec

    return run


def _resumed() -> tuple[Any, Recorder]:
    """PPO/GRU: train, save, load with the env, continue (the checkpoint path in the middle of a run)."""
    from tracerl import TraceRL

    agent = TraceRL(env=CUE, env_kwargs=CUE_KW, memory="gru", seed=1, verbose=0, n_envs=4, n_steps=32,
                    hidden_size=16)
    rec = Recorder()
    agent.learn(1024, callback=rec)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mid.tracerl"
        agent.save(path)
        resumed = TraceRL.load(path, env=CUE, verbose=0)
    resumed.learn(1024, reset_num_timesteps=False, callback=rec)
    return resumed, rec


def _resumed_offpolicy() -> tuple[Any, Recorder]:
    """R2D2/GRU: train, save (replay included), load with the env, continue."""
    from tracerl import TraceRL

    agent = TraceRL(env=CUE, env_kwargs=CUE_KW, algo="r2d2", **{**_OFF_COMMON, "prioritized": True})
    rec = Recorder()
    agent.learn(1000, callback=rec)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mid.tracerl"
        agent.save(path)
        resumed = TraceRL.load(path, env=CUE, verbose=0)
    resumed.learn(1000, reset_num_timesteps=False, callback=rec)
    return resumed, rec


RUNS: dict[str, Callable[[], tuple[Any, Recorder]]] = {
    "ppo_gru": _ppo("gru"),
    "ppo_lstm": _ppo("lstm"),
    "ppo_transformer": _ppo("transformer", memory_kwargs={"window": 8}),
    "ppo_strategic": _strategic,
    "a2c_gru": _ppo("gru", steps=1024, algo="a2c"),
    "r2d2_gru": _offpolicy("r2d2", CUE, CUE_KW, prioritized=True),
    "drqn_gru": _offpolicy("drqn", CUE, CUE_KW),
    "sac_gru": _offpolicy("sac", CW, CW_KW),
    "td3_gru": _offpolicy("td3", CW, CW_KW),
    "ppo_gru_resumed": _resumed,
    "r2d2_gru_resumed": _resumed_offpolicy,
}
"""Run name -> a function that trains and returns (agent, recorder). The cheapest: ``a2c_gru``, ``ppo_gru``."""


def run_one(name: str) -> dict[str, str]:
    """Train run ``name`` (one torch thread, as TraceRL.learn sets) and return its digests."""
    agent, rec = RUNS[name]()
    return {"params": params_hash(agent), "metrics": metrics_hash(rec, agent)}


def environment() -> dict[str, str]:
    return {"torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "cpu": _cpu_name()}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_reference() -> dict[str, Any]:
    return json.loads(HASHES.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help=f"record the hashes in {HASHES.name}")
    mode.add_argument("--check", action="store_true", help=f"compare with {HASHES.name}; exit 1 on a mismatch")
    parser.add_argument("runs", nargs="*", help=f"run names (default: all): {', '.join(RUNS)}")
    args = parser.parse_args(argv)
    names = args.runs or list(RUNS)
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        parser.error(f"unknown run(s): {', '.join(unknown)}")
    torch.set_num_threads(1)
    results = {}
    for name in names:
        results[name] = run_one(name)
        print(f"{name}: params {results[name]['params'][:16]} metrics {results[name]['metrics'][:16]}", flush=True)
    if args.write:
        old = load_reference()["runs"] if HASHES.exists() and args.runs else {}
        data = {"environment": environment(), "excluded": EXCLUDED, "runs": {**old, **results}}
        HASHES.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        print(f"wrote {HASHES}")
        return 0
    ref = load_reference()
    env_now, env_ref = environment(), ref["environment"]
    if env_now["torch"] != env_ref["torch"] or env_now["cpu"] != env_ref["cpu"]:
        print(f"note: recorded with torch {env_ref['torch']} on {env_ref['cpu']}; this is torch {env_now['torch']} "
              f"on {env_now['cpu']} (bit-exact hashes may differ)")
    bad = 0
    for name in names:
        want = ref["runs"].get(name)
        if want is None:
            print(f"{name}: NOT RECORDED")
            bad += 1
            continue
        diff = [k for k in ("params", "metrics") if want[k] != results[name][k]]
        print(f"{name}: {'match' if not diff else 'MISMATCH (' + ', '.join(diff) + ')'}")
        bad += bool(diff)
    print(f"{len(names) - bad}/{len(names)} match")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
