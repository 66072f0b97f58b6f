"""The ``tracerl`` command line: ``train``, ``eval``, ``list`` and ``copytask``.

Every field of :class:`~tracerl.algos.PPOConfig` and :class:`~tracerl.policies.PolicyConfig` is a
flag of ``tracerl train`` (generated from the dataclasses, with their field docstrings as help).
Algorithm fields left unset take the chosen ``--algo``'s defaults.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import sys
import typing
from pathlib import Path
from typing import Annotated, Any, Optional, Sequence

import tyro

from .config_docs import field_docs

COMMANDS = ("train", "eval", "list", "copytask", "bench", "inspect")


def parse_kwargs(items: Sequence[str], flag: str) -> dict[str, Any]:
    """``["delay=64", "difficulty=1"]`` -> ``{"delay": 64, "difficulty": 1}`` (values as Python literals,
    else strings). A malformed item raises ValueError naming the flag and the item."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag}: expected KEY=VALUE, got {item!r}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def _generated_fields(cls: type, skip: set[str]) -> list[tuple[str, Any, Any]]:
    """Optional copies of ``cls``'s fields (default None = keep the library's default), with help text."""
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        typ = hints[f.name]
        if typing.get_origin(typ) is tuple:
            typ = tuple[str, ...] if str in typing.get_args(typ) else tuple[int, ...]
        help_text = docs.get(f.name, "") + " Unset (None) keeps the default of --algo."
        out.append((f.name, Annotated[Optional[typ], tyro.conf.arg(help=help_text)], dataclasses.field(default=None)))
    return out


def _train_args_class() -> type:
    from .algos.ppo import PPOConfig
    from .policies.policy import PolicyConfig

    own: list[tuple[str, Any, Any]] = [
        ("env", Annotated[str, tyro.conf.arg(help="Gymnasium env id, e.g. tracerl/CueDelay-v0 or CartPole-v1")],
         dataclasses.field(default="tracerl/CueDelay-v0")),
        ("env_kwargs", Annotated[tuple[str, ...], tyro.conf.arg(help="env keyword arguments as KEY=VALUE")],
         dataclasses.field(default=())),
        ("env_module", Annotated[tuple[str, ...], tyro.conf.arg(
            help="with --resume: Python modules the run's recorded env id may import ('module:Env-v0'); an env id "
                 "read from config.json imports none unless named here")], dataclasses.field(default=())),
        ("memory", Annotated[str, tyro.conf.arg(help="memory core name (see `tracerl list`)")],
         dataclasses.field(default="gru")),
        ("memory_kwargs", Annotated[tuple[str, ...], tyro.conf.arg(help="memory core keyword arguments as KEY=VALUE")],
         dataclasses.field(default=())),
        ("algo", Annotated[str, tyro.conf.arg(help="ppo, a2c, reinforce, sac, td3 or r2d2")], dataclasses.field(default="ppo")),
        ("steps", Annotated[int, tyro.conf.arg(help="total env steps to train")], dataclasses.field(default=100_000)),
        ("seed", Annotated[int, tyro.conf.arg(help="random seed")], dataclasses.field(default=0)),
        ("out", Annotated[str, tyro.conf.arg(help="output directory (checkpoint, config, logs)")],
         dataclasses.field(default="runs/tracerl")),
        ("device", Annotated[str, tyro.conf.arg(help="torch device")], dataclasses.field(default="cpu")),
        ("threads", Annotated[int, tyro.conf.arg(help="torch CPU threads (1 is fastest for small nets)")],
         dataclasses.field(default=1)),
        ("log_interval", Annotated[int, tyro.conf.arg(help="log every N rollouts")], dataclasses.field(default=10)),
        ("progress", Annotated[bool, tyro.conf.arg(help="show a progress bar")], dataclasses.field(default=True)),
        ("verbose", Annotated[int, tyro.conf.arg(help="0 silent, 1 log table")], dataclasses.field(default=1)),
        ("eval_episodes", Annotated[int, tyro.conf.arg(help="held-out evaluation episodes after training (0: none)")],
         dataclasses.field(default=100)),
        ("checkpoint_every", Annotated[int, tyro.conf.arg(help="save a checkpoint into OUT/checkpoints every N env "
                                                               "steps (0: only the final one)")],
         dataclasses.field(default=0)),
        ("keep_checkpoints", Annotated[int, tyro.conf.arg(help="periodic checkpoints to keep")],
         dataclasses.field(default=3)),
        ("resume", Annotated[Optional[str], tyro.conf.arg(
            help="resume the run in this directory from its newest loadable checkpoint (its config.json gives "
                 "every other setting; the result equals an uninterrupted run)")],
         dataclasses.field(default=None)),
    ]
    taken = {name for name, _, _ in own}
    from .agent_config import MemoryAgentConfig

    generated = _generated_fields(PPOConfig, taken) + _generated_fields(
        PolicyConfig, taken | {"memory_kwargs", "intrinsic_value"})
    generated += _generated_fields(MemoryAgentConfig, taken | {name for name, _, _ in generated})
    from .algos.offpolicy_agent import offpolicy_cli_fields  # sac / td3 / r2d2 fields not shared with PPO

    generated += offpolicy_cli_fields(taken | {name for name, _, _ in generated} | {"memory_kwargs"})
    return dataclasses.make_dataclass("TrainArgs", own + generated)


@dataclasses.dataclass
class EvalArgs:
    """Evaluate a checkpoint on held-out episodes."""

    checkpoint: tyro.conf.Positional[str]
    """Path of a .tracerl checkpoint written by `tracerl train` or TraceRL.save."""
    episodes: int = 200
    """Number of evaluation episodes."""
    env: Optional[str] = None
    """Env id (default: the one the agent was trained on)."""
    env_kwargs: tuple[str, ...] = ()
    """Env keyword arguments as KEY=VALUE. They replace the checkpoint's; without them the checkpoint's are used
    only when the env is the one it was trained on (an --env that differs gets none)."""
    env_module: tuple[str, ...] = ()
    """Python modules the checkpoint's env id may import ('module:Env-v0'); an env id from a file imports none
    unless named here (tracerl and an installed popgym are trusted)."""
    seed: int = 10_000
    """Evaluation seed (keep it apart from training seeds)."""
    stochastic: bool = False
    """Sample actions instead of taking the distribution's mode."""
    threads: int = 1
    """torch CPU threads."""


@dataclasses.dataclass
class InspectArgs:
    """Record what a checkpoint's memory holds and attends to; write inspection.json and inspection.png."""

    checkpoint: tyro.conf.Positional[str]
    """Path of a .tracerl checkpoint."""
    env: Optional[str] = None
    """Env id (default: the one the agent was trained on)."""
    env_kwargs: tuple[str, ...] = ()
    """Env keyword arguments as KEY=VALUE. They replace the checkpoint's; without them the checkpoint's are used
    only when the env is the one it was trained on (an --env that differs gets none)."""
    env_module: tuple[str, ...] = ()
    """Python modules the checkpoint's env id may import ('module:Env-v0'); an env id from a file imports none
    unless named here (tracerl and an installed popgym are trusted)."""
    episodes: int = 20
    """Number of episodes to record (the linear probe needs at least 4)."""
    out: str = "inspection"
    """Output folder."""
    info_key: str = "cue"
    """The hidden variable in info to decode from the memory features."""
    seed: int = 20_000
    """Env seed (held-out episodes)."""
    stochastic: bool = False
    """Sample actions instead of taking the distribution's mode."""
    threads: int = 1
    """torch CPU threads."""


def _train(argv: Sequence[str]) -> int:
    import torch

    from .agent import TraceRL
    from .algos.ppo import PPOConfig
    from .policies.policy import PolicyConfig

    args = tyro.cli(_train_args_class(), args=list(argv), prog="tracerl train",
                    description="Train a memory agent.")
    torch.set_num_threads(args.threads)
    if args.resume is not None:
        return _resume(Path(args.resume), args)
    env_kwargs = parse_kwargs(args.env_kwargs, "--env-kwargs")
    hyper = {f.name: getattr(args, f.name) for f in dataclasses.fields(PPOConfig) if getattr(args, f.name) is not None}
    hyper.update({f.name: getattr(args, f.name) for f in dataclasses.fields(PolicyConfig)
                  if f.name not in ("memory", "memory_kwargs", "intrinsic_value") and getattr(args, f.name) is not None})
    from .agent_config import MemoryAgentConfig

    hyper.update({f.name: getattr(args, f.name) for f in dataclasses.fields(MemoryAgentConfig)
                  if getattr(args, f.name) is not None})
    from .algos.offpolicy_agent import offpolicy_cli_values

    hyper.update(offpolicy_cli_values(args, {f.name for f in dataclasses.fields(PPOConfig)}))
    memory_kwargs = parse_kwargs(args.memory_kwargs, "--memory-kwargs")
    if memory_kwargs:
        hyper["memory_kwargs"] = memory_kwargs
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    policy_class = None
    if args.memory == "strategic" and args.algo in ("ppo", "a2c", "reinforce"):
        from .policies.strategic import StrategicMemoryTransformerPolicy

        policy_class = StrategicMemoryTransformerPolicy  # raw steps into the memory (seed 001's policy)
    agent = TraceRL(policy_class, env=args.env, env_kwargs=env_kwargs, memory=args.memory, algo=args.algo,
                    device=args.device, verbose=args.verbose, seed=args.seed, tensorboard_log=out, **hyper)
    config = {"env": args.env, "env_kwargs": env_kwargs, "algo": args.algo, "steps": args.steps, "seed": args.seed,
              "checkpoint_every": args.checkpoint_every, "keep_checkpoints": args.keep_checkpoints,
              "log_interval": args.log_interval, "eval_episodes": args.eval_episodes,
              "ppo": agent.config.to_json(), "policy": agent.policy_config.to_json()}
    (out / "config.json").write_text(json.dumps(config, indent=2))
    return _finish_training(agent, config, out, args.steps, args.progress, reset=True)


def _finish_training(agent: Any, config: dict[str, Any], out: Path, steps: int, progress: bool, reset: bool) -> int:
    """Train ``steps`` more env steps with the run's checkpointing, save the final agent, evaluate."""
    from .evaluation import evaluate

    every = config.get("checkpoint_every") or None
    agent.learn(steps, log_interval=config["log_interval"], progress_bar=progress, reset_num_timesteps=reset,
                checkpoint_every=every, checkpoint_dir=out / "checkpoints" if every else None,
                keep_checkpoints=config["keep_checkpoints"])
    ckpt = out / "agent.tracerl"
    agent.save(ckpt)
    print(f"saved {ckpt}")
    if config["eval_episodes"] > 0:
        res = evaluate(agent, config["env"], config["eval_episodes"], env_kwargs=config["env_kwargs"])
        (out / "eval.json").write_text(json.dumps(res.to_json(), indent=2))
        _print_eval(res.to_json())
    return 0


def _resume(out: Path, args: Any) -> int:
    """Continue the run in ``out`` from its newest loadable checkpoint to the step count it was started with."""
    from .agent import CHECKPOINT_KIND, TraceRL
    from .io.checkpoint import load_checkpoint
    from .io.rotation import newest_loadable

    config_path = out / "config.json"
    if not config_path.exists():
        raise ValueError(f"--resume {out}: no config.json there (was it written by `tracerl train --out`?)")
    config = json.loads(config_path.read_text())
    from .envs.safe_make import env_id_from_file

    config["env"] = env_id_from_file(config.get("env"), config_path, args.env_module)  # imports no module unless named
    from .algos.offpolicy_agent import CHECKPOINT_KIND as OFF_POLICY_KIND

    kind = OFF_POLICY_KIND if config.get("algo") in ("sac", "td3", "r2d2") else CHECKPOINT_KIND
    path = newest_loadable(out / "checkpoints", lambda p: load_checkpoint(p, kind=kind))
    agent = TraceRL.load(path, env=config["env"], verbose=args.verbose, import_modules=args.env_module)
    agent.tensorboard_log = out
    remaining = config["steps"] - agent.num_timesteps
    print(f"resuming {out} from {path.name} at {agent.num_timesteps} steps; {max(remaining, 0)} to go")
    if remaining <= 0:
        return 0
    return _finish_training(agent, config, out, remaining, args.progress, reset=False)


def _print_eval(r: dict[str, Any]) -> None:
    from tabulate import tabulate

    print(tabulate([[r["episodes"], f"{r['mean_return']:.3f}", f"{r['std_return']:.3f}", f"{r['success_rate']:.3f}"]],
                   headers=["episodes", "mean return", "std", "success rate"]))


def _load_checkpoint_and_env(args: Any, prog: str) -> tuple[Any, str, dict[str, Any]]:
    """The agent of ``args.checkpoint`` and the env to run it on (``--env`` / ``--env-kwargs`` or the recorded ones)."""
    import torch

    from .agent import TraceRL

    torch.set_num_threads(args.threads)
    agent = TraceRL.load(args.checkpoint, verbose=0, import_modules=args.env_module)
    env_id = args.env or agent.env_id
    if env_id is None:
        raise SystemExit(f"{prog}: the checkpoint does not record its env; pass --env")
    if args.env_kwargs:
        env_kwargs = parse_kwargs(args.env_kwargs, "--env-kwargs")
    elif args.env is None or args.env == agent.env_id:
        env_kwargs = agent.env_kwargs  # the checkpoint's env: its kwargs
    else:
        env_kwargs = {}  # another env: the checkpoint's kwargs were for a different constructor
    return agent, env_id, env_kwargs


def _eval(argv: Sequence[str]) -> int:
    from .evaluation import evaluate

    args = tyro.cli(EvalArgs, args=list(argv), prog="tracerl eval")
    agent, env_id, env_kwargs = _load_checkpoint_and_env(args, "tracerl eval")
    res = evaluate(agent, env_id, args.episodes, deterministic=not args.stochastic, seed=args.seed,
                   env_kwargs=env_kwargs)
    _print_eval(res.to_json())
    return 0


def _inspect(argv: Sequence[str]) -> int:
    args = tyro.cli(InspectArgs, args=list(argv), prog="tracerl inspect")
    agent, env_id, env_kwargs = _load_checkpoint_and_env(args, "tracerl inspect")
    report = agent.inspect(env_id, episodes=args.episodes, out=args.out, env_kwargs=env_kwargs, seed=args.seed,
                           deterministic=not args.stochastic, info_key=args.info_key)
    for key, value in report.summary.items():
        print(f"{key:40s} {value:.3f}")
    for kind, path in report.files.items():
        print(f"wrote {kind}: {path}")
    return 0


def _list(argv: Sequence[str]) -> int:
    from .algos import ALGORITHMS
    from .envs import REGISTERED_ENV_IDS
    from .memory import available_memories

    if argv:
        raise SystemExit(f"tracerl list takes no arguments, got {' '.join(argv)}")
    print("envs (tracerl):  " + ", ".join(REGISTERED_ENV_IDS) + "   (any Gymnasium id works too)")
    print("memories:        " + ", ".join(available_memories()))
    print("algorithms:      " + ", ".join(ALGORITHMS))
    return 0


def _copytask(argv: Sequence[str]) -> int:
    from .supervised.copy_task import copytask_main

    return copytask_main(argv)


def _bench(argv: Sequence[str]) -> int:
    from .bench.cli import bench_main

    return bench_main(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tracerl`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: tracerl {train,eval,list,copytask,bench,inspect} [--help]\n\n"
              "  train     train a memory agent (tracerl train --help lists every hyperparameter)\n"
              "  eval      evaluate a checkpoint on held-out episodes\n"
              "  list      the envs, memories and algorithms tracerl provides\n"
              "  copytask  train any memory core on the copy task (Graves et al. 2014), bit error per length\n"
              "  bench     benchmark suites against SB3 PPO / RecurrentPPO (tracerl bench --help, --list)\n"
              "  inspect   what a checkpoint's memory holds and attends to (JSON, PNG, linear probe)")
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"tracerl: unknown command {cmd!r}; valid: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    from .errors import TraceRLError

    try:
        return {"train": _train, "eval": _eval, "list": _list, "copytask": _copytask, "bench": _bench,
                "inspect": _inspect}[cmd](rest)
    except (TraceRLError, ValueError, TypeError) as exc:
        print(f"tracerl {cmd}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
