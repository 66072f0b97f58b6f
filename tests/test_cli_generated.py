"""`tracerl train`'s flags are generated from the library's typed configs: every field of every registered
algorithm's config (and of PolicyConfig and the agent-option configs) is a flag with its docstring as help, an algorithm
registered from outside the package is a --algo choice with its own flags, and no library module imports the CLI."""

from __future__ import annotations

import ast
import dataclasses
import json
import re
from pathlib import Path

import pytest
import tyro

import tracerl
from tracerl import TraceRL
from tracerl.algos.r2d2 import R2D2, R2D2Config
from tracerl.agent_config import OPTION_CLASSES
from tracerl.algos.registry import available_algos, get_algo, register_algo, unregister_algo
from tracerl.cli import COMMANDS, _hyperparams, main, register_command
from tracerl.cli_args import train_args_class
from tracerl.policies.policy import PolicyConfig
from tracerl.config_docs import field_docs


def _normalized(text: str) -> str:
    """Help text without rich's box characters and line breaks (a docstring wraps anywhere in a panel)."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def _help(capsys, monkeypatch, *argv: str) -> str:
    monkeypatch.setenv("COLUMNS", "100")  # one panel column: a field's help is contiguous text
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["train", *argv, "--help"])
    assert exit_info.value.code == 0
    return _normalized(capsys.readouterr().out)


def _docs(cls: type) -> dict[str, str]:
    """Field docstrings of ``cls`` and of the dataclasses it inherits from (the subclass's own win)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            docs.update(field_docs(klass))
    return docs


def _configs(algo: str) -> list[tuple[str, type, tuple[str, ...]]]:
    """(group, config class, fields that are not flags) of every config `tracerl train --algo ALGO` nests."""
    return [("algorithm", get_algo(algo).config_class, ()),
            # set by the agent from use_rnd / given as --memory-kwargs KEY=VALUE
            ("policy", PolicyConfig, ("intrinsic_value", "memory_kwargs")),
            *((name, cls, ()) for name, cls in OPTION_CLASSES.items())]  # the agent options, one config per owner


def _assert_every_field_is_a_documented_flag(help_text: str, algo: str) -> int:
    checked = 0
    for group, cls, hidden in _configs(algo):
        docs = _docs(cls)
        for f in dataclasses.fields(cls):
            if f.name in hidden:
                continue
            flag = f.name.replace("_", "-")
            assert f"--{flag} " in help_text or f"--{group}.{flag} " in help_text, (algo, group, f.name)
            assert docs.get(f.name), f"{cls.__name__}.{f.name} has no docstring"
            assert _normalized(docs[f.name]) in help_text, (algo, f.name, docs[f.name])
            checked += 1
    return checked


@pytest.mark.parametrize("algo", available_algos())
def test_train_help_shows_every_config_field_of_every_registered_algorithm_with_its_docstring(
        algo, capsys, monkeypatch):
    help_text = _help(capsys, monkeypatch, "--algo", algo)
    assert _assert_every_field_is_a_documented_flag(help_text, algo) > 30
    for flag in ("--steps", "--seed", "--out", "--env", "--env-kwargs", "--memory", "--memory-kwargs", "--resume",
                 "--overwrite", "--no-progress", "--checkpoint-every"):
        assert f"{flag} " in help_text or f"{flag}," in help_text, flag
    assert "{" + ",".join(available_algos()) + "}" in help_text  # --algo's choices: the registry's names
    assert "--intrinsic-value" not in help_text  # the agent sets it from use_rnd: not a flag


def test_train_help_shows_the_chosen_algorithms_defaults(capsys, monkeypatch):
    ppo = _help(capsys, monkeypatch)
    a2c = _help(capsys, monkeypatch, "--algo", "a2c")
    assert "Passes over the rollout per update. (default: 4)" in ppo
    assert "Passes over the rollout per update. (default: 1)" in a2c
    r2d2 = _help(capsys, monkeypatch, "--algo=r2d2")
    assert "--n-step INT" in r2d2 and "--n-steps INT" not in r2d2  # R2D2Config's fields, not PPOConfig's


@dataclasses.dataclass
class KnobDQNConfig(R2D2Config):
    """R2D2 with one more hyperparameter, registered from this test file."""

    knob: int = 3
    """A setting only this test's algorithm has (the CLI must expose it)."""
    hidden_size: int = 5
    """An algorithm field whose name PolicyConfig also uses (neither may be dropped)."""


class KnobDQN(R2D2):
    """R2D2 under another name (its config carries ``knob``)."""


@pytest.fixture
def knob_dqn():
    register_algo("knob_dqn", KnobDQNConfig, KnobDQN, kind="off_policy", doc="test algorithm with a knob")
    yield "knob_dqn"
    unregister_algo("knob_dqn")


def test_an_algorithm_registered_in_a_test_file_is_a_choice_with_its_own_documented_flags(knob_dqn, capsys,
                                                                                            monkeypatch):
    help_text = _help(capsys, monkeypatch, "--algo", knob_dqn)
    assert "knob_dqn" in help_text and "test algorithm with a knob" in help_text
    assert "--knob INT A setting only this test's algorithm has (the CLI must expose it). (default: 3)" in help_text
    # The clash: the algorithm's field keeps the plain flag, PolicyConfig's gets its group as a prefix.
    assert "--hidden-size INT An algorithm field whose name PolicyConfig also uses" in help_text
    assert "--policy.hidden-size INT" in help_text
    _assert_every_field_is_a_documented_flag(help_text, knob_dqn)
    args = tyro.cli(train_args_class(knob_dqn), args=["--algo", knob_dqn, "--knob", "9", "--hidden-size", "6",
                                                      "--policy.hidden-size", "12"])
    assert (args.algorithm.knob, args.algorithm.hidden_size, args.policy.hidden_size) == (9, 6, 12)
    assert _hyperparams(args) == {"knob": 9, "hidden_size": 12}  # the policy's width; the clash is the config's


def test_an_algorithm_registered_in_a_test_file_trains_and_evaluates_through_the_cli(knob_dqn, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--algo", knob_dqn, "--knob", "7", "--env", "tracerl/CueDelay-v0", "--env-kwargs",
                 "delay=3", "difficulty=1", "--steps", "120", "--learning-starts", "40", "--seq-len", "4",
                 "--n-envs", "2", "--buffer-size", "400", "--batch-size", "4", "--policy.hidden-size", "8",
                 "--no-progress", "--verbose", "0", "--eval-episodes", "0", "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["algo"] == knob_dqn
    agent = TraceRL.load(out)
    assert isinstance(agent.config, KnobDQNConfig) and agent.config.knob == 7
    assert agent.policy_config.hidden_size == 8 and agent.num_timesteps >= 120
    capsys.readouterr()
    assert main(["eval", str(out), "--episodes", "4"]) == 0
    assert "success rate" in capsys.readouterr().out


def test_only_the_flags_given_reach_the_agent_and_config_booleans_take_values():
    cls = train_args_class("ppo")
    assert _hyperparams(tyro.cli(cls, args=[])) == {}  # nothing given: the library's defaults, untouched
    args = tyro.cli(cls, args=["--use-rnd", "True", "--intrinsic-expl", "True", "--aux", "cue", "confidence",
                               "--n-steps", "32", "--encoder-hidden", "16", "16", "--memory", "lstm",
                               "--memory-kwargs", "dropout=0.0", "--reward-norm", "False", "--no-progress"])
    assert _hyperparams(args) == {"use_rnd": True, "intrinsic_expl": True, "aux": ("cue", "confidence"),
                                  "n_steps": 32, "encoder_hidden": (16, 16), "memory_kwargs": {"dropout": 0.0},
                                  "reward_norm": False}
    assert args.policy.memory == "lstm" and args.run.progress is False
    a2c = tyro.cli(train_args_class("a2c"), args=["--algo", "a2c", "--n-epochs", "1", "--n-steps", "16"])
    assert _hyperparams(a2c) == {"n_steps": 16}  # n_epochs 1 is A2C's own default: left to the library


@pytest.mark.faults("A bad value of a config flag (`tracerl train --n-steps 0`, --hidden-size 0, --rnd-lr -1, "
                    "--algo sac --tau 2, --algo nope, --algo ppo --seq-len 4) | exit 2, one line on stderr naming the field | none")
@pytest.mark.parametrize("argv, named", [
    (["--n-steps", "0"], "n_steps"),
    (["--hidden-size", "0"], "hidden_size"),
    (["--rnd-lr", "-1"], "rnd_lr"),
    (["--algo", "sac", "--tau", "2"], "tau"),
    (["--algo", "nope"], "nope"),
    (["--algo", "ppo", "--seq-len", "4"], "--seq-len is a flag of --algo sac, td3, r2d2"),  # another algo's flag
])
def test_a_bad_config_value_is_one_line_with_exit_code_2(tmp_path, capsys, argv, named):
    out = tmp_path / "x"
    assert main(["train", *argv, "--out", str(out), "--no-progress", "--verbose", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tracerl train: error: ") and named in err
    assert not out.exists()


def test_a_command_registered_in_one_place_is_dispatched_and_listed(capsys):
    seen = []
    register_command("echo_test", lambda argv: seen.append(list(argv)) or 0, "a test command")
    try:
        assert main(["echo_test", "a", "--b"]) == 0 and seen == [["a", "--b"]]
        assert main(["--help"]) == 0
        assert "echo_test" in capsys.readouterr().out
        with pytest.raises(ValueError, match="already registered"):
            register_command("echo_test", lambda argv: 0, "again")
    finally:
        COMMANDS.pop("echo_test", None)


_CLI_MODULES = {"tracerl.cli", "tracerl.cli_args", "tracerl.__main__"}


def _imported_modules(path: Path, module: str) -> set[str]:
    """The absolute names of the modules ``path`` (module ``module``) imports, relative imports resolved."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[: len(package) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def test_no_library_module_imports_the_cli():
    root = Path(tracerl.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        module = ".".join(("tracerl",) + path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        if module in _CLI_MODULES:
            continue
        if _imported_modules(path, module) & _CLI_MODULES:
            offenders.append(module)
    assert offenders == []
    # the check sees an import of the CLI (so it can fail)
    assert "tracerl.cli" in _imported_modules(root / "__main__.py", "tracerl.__main__")


@pytest.mark.parametrize("command, args_class", [("bench", "tracerl.bench.cli:BenchArgs"),
                                                 ("eval", "tracerl.cli_args:EvalArgs"),
                                                 ("inspect", "tracerl.cli_args:InspectArgs"),
                                                 ("export", "tracerl.cli_args:ExportArgs")])
def test_the_other_commands_flags_come_from_their_typed_arguments_with_docstrings(command, args_class, capsys,
                                                                                   monkeypatch):
    import importlib

    module, name = args_class.split(":")
    cls = getattr(importlib.import_module(module), name)
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    help_text = _normalized(capsys.readouterr().out)
    docs = _docs(cls)
    for f in dataclasses.fields(cls):
        if f.name != "checkpoint" and f.name != "suite":  # positional
            flag = f.name.replace("_", "-")
            assert f"--{flag}" in help_text or f"--no-{flag}" in help_text, (command, f.name)
        if f.name in docs:
            assert _normalized(docs[f.name]) in help_text, (command, f.name)


def _readme_commands() -> list[list[str]]:
    """The `tracerl train / eval / inspect / export / bench` lines of README.md's code blocks, as argv lists
    (comments and `...` dropped; --help lines skipped)."""
    import shlex

    readme = Path(__file__).resolve().parents[1] / "README.md"
    commands = []
    for line in readme.read_text().splitlines():
        line = line.strip().removeprefix(".venv/bin/")
        if not re.match(r"tracerl (train|eval|inspect|export|bench)\b", line):
            continue
        argv = [token for token in shlex.split(line.split("#")[0]) if token != "..."][1:]
        if "--help" not in argv:
            commands.append(argv)
    return commands


def test_every_readme_command_line_parses():
    from tracerl.bench.cli import BenchArgs
    from tracerl.cli import _refuse_other_algos_flags
    from tracerl.cli_args import EvalArgs, ExportArgs, InspectArgs, algo_in, leaf_names

    commands = _readme_commands()
    assert {argv[0] for argv in commands} == {"train", "eval", "inspect", "export", "bench"}
    for command, *argv in commands:
        if command == "train":
            cls = train_args_class(algo_in(argv))
            _refuse_other_algos_flags(argv, algo_in(argv), leaf_names(cls))
            tyro.cli(cls, args=argv)
        elif command == "bench":
            tyro.cli(BenchArgs, args=argv, config=(tyro.conf.FlagCreatePairsOff,))
        else:
            tyro.cli({"eval": EvalArgs, "inspect": InspectArgs, "export": ExportArgs}[command], args=argv)
    strategic = next(argv for argv in commands if "strategic" in argv)
    args = tyro.cli(train_args_class(), args=strategic[1:])
    assert _hyperparams(args) == {"use_rnd": True, "intrinsic_expl": True, "aux": ("cue", "confidence")}
