"""Edited-but-re-hashed checkpoints: a file that asks for a huge agent is refused before anything big is allocated,
and every malformed entry is a CheckpointError naming the file and entry (never another exception)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from checkpoint_edit import read_raw, write_rehashed
from tracerl import TraceRL
from tracerl.errors import CheckpointError

CUE = "tracerl/CueDelay-v0"
_PPO = dict(env=CUE, env_kwargs={"delay": 2}, n_envs=2, n_steps=8, batch_size=8, n_epochs=1, hidden_size=8,
            encoder_hidden=(16,), seed=0, verbose=0)
_R2D2 = dict(env=CUE, env_kwargs={"delay": 2}, algo="r2d2", n_envs=2, learning_starts=8, buffer_size=64,
             batch_size=2, seq_len=4, hidden_size=8, encoder_hidden=(16,), head_hidden=(8,), seed=0, verbose=0)
_SAC = dict(_R2D2, algo="sac")


def _saved(tmp_path: Path, name: str, steps: int = 16, **kwargs: Any) -> Path:
    agent = TraceRL(**kwargs)
    agent.learn(steps)
    path = tmp_path / f"{name}.tracerl"
    agent.save(path)
    return path


def _edit_meta(src: Path, dst: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    tensors, meta, kind = read_raw(src)
    edit(meta)
    write_rehashed(dst, tensors, meta, kind)
    return dst


def _set(*keys: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(meta: dict[str, Any]) -> None:
        node = meta
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return edit


# --------------------------------------------------------------------------------- 1. unbounded allocation

_HUGE_PPO = {
    "hidden_size_4000": _set("policy", "hidden_size", value=4000),  # ~0.4 GB of GRU weights
    "hidden_size_14000": _set("policy", "hidden_size", value=14000),  # ~4.7 GB (the 7.9 GB, 536 s)
    "discrete_n_5e6": _set("action_space", "n", value=5_000_000),  # actor head of 5e6 x 8 floats
    "discrete_n_1e9": _set("action_space", "n", value=10**9),
    "encoder_widths_1e6": _set("policy", "encoder_hidden", value=[10**6]),
    "encoder_widths_50000x2": _set("policy", "encoder_hidden", value=[50_000, 50_000]),
    "aux_n_classes_1e9": _set("aux_modules", value=[{"name": "CueAuxModule", "config": {
        "feat_dim": 8, "n_classes": 10**9, "coef": 0.1, "info_key": "cue"}}]),
    "aux_n_classes_1e7": _set("aux_modules", value=[{"name": "CueAuxModule", "config": {
        "feat_dim": 8, "n_classes": 10**7, "coef": 0.1, "info_key": "cue"}}]),
    "n_envs_1e9": _set("ppo", "n_envs", value=10**9),
    "n_steps_1e9": _set("ppo", "n_steps", value=10**9),
}
_HUGE_R2D2 = {
    "buffer_size_1e9": _set("config", "buffer_size", value=10**9),
    "buffer_size_1e7": _set("config", "buffer_size", value=10**7),  # ~0.3 GB touched by the replay's index arrays
    "hidden_size_14000": _set("policy", "hidden_size", value=14000),
    "head_hidden_60000": _set("config", "head_hidden", value=[60_000]),
}
_HUGE_STRATEGIC = {
    "max_entries_1e8": _set("policy", "memory_kwargs", "max_entries", value=10**8),
    "max_entries_1e6": _set("policy", "memory_kwargs", "max_entries", value=10**6),
}

_PROBE = textwrap.dedent("""
    import json, resource, sys
    from tracerl import TraceRL
    from tracerl.errors import CheckpointError

    def peak_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB

    env = "tracerl/CueDelay-v0"
    for reference in json.loads(sys.argv[2]):  # warm up: every import and first-use allocation of a real load
        TraceRL.load(reference, env=env, verbose=0)
    base = peak_mb()
    results = {}
    for name, path in json.loads(sys.argv[1]).items():
        try:
            TraceRL.load(path, env=env, verbose=0)
            outcome = "loaded"
        except CheckpointError as exc:
            outcome = "CheckpointError: " + str(exc)
        except BaseException as exc:
            outcome = type(exc).__name__ + ": " + str(exc)[:300]
        results[name] = [outcome, peak_mb() - base]
    print(json.dumps(results))
""")


@pytest.mark.faults("A re-hashed checkpoint asking for a huge network, action space, encoder, aux head, strategic memory, replay or env count (16 variants, PPO, R2D2, strategic) | CheckpointError naming the entry, before anything big is allocated (peak RSS growth < 200 MB) | none")
def test_checkpoint_asking_for_a_huge_agent_is_refused_without_allocating_it(tmp_path: Path) -> None:
    sources = {"ppo": _saved(tmp_path, "ppo", **_PPO), "r2d2": _saved(tmp_path, "r2d2", steps=24, **_R2D2),
               "strategic": _saved(tmp_path, "strategic", **dict(_PPO, memory="strategic",
                                                                memory_kwargs={"max_entries": 4}))}
    crafted = {}
    for family, edits in (("ppo", _HUGE_PPO), ("r2d2", _HUGE_R2D2), ("strategic", _HUGE_STRATEGIC)):
        for name, edit in edits.items():
            crafted[f"{family}:{name}"] = str(_edit_meta(sources[family], tmp_path / f"{family}-{name}.tracerl", edit))
    for path in crafted.values():
        assert Path(path).stat().st_size < 200_000  # small files...
    run = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(crafted),
                          json.dumps([str(p) for p in sources.values()])],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(run.stdout.strip().splitlines()[-1])
    not_refused = {name: outcome for name, (outcome, _) in results.items() if not outcome.startswith("CheckpointError")}
    assert not not_refused, not_refused
    grown = {name: round(mb) for name, (_, mb) in results.items() if mb >= 200}
    assert not grown, f"peak RSS grew by >= 200 MB (MB per variant, cumulative peak): {grown}"
    assert all("file=" in outcome and "entry=" in outcome for outcome, _ in results.values()), results


# ------------------------------------------------------------------------- 4. one CheckpointError boundary


def _optim_group(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(meta: dict[str, Any]) -> None:
        groups = meta["optim_param_groups"]
        (groups if isinstance(groups, list) else groups["q"])[0][key] = value

    return edit


@pytest.mark.faults("A re-hashed checkpoint whose optimizer group has lr -1, lr NaN, maximize=true, other betas/eps, or an unknown option (PPO and R2D2) | CheckpointError naming the file and the group's entry; nothing trains the wrong way | none")
@pytest.mark.parametrize("family", ["ppo", "r2d2"])
@pytest.mark.parametrize(("key", "value"), [("lr", -1.0), ("lr", float("nan")), ("lr", 0.5), ("maximize", True),
                                            ("betas", [0.5, 0.999]), ("eps", 1.0), ("weight_decay", 0.1),
                                            ("amsgrad", True), ("sneaky", 1), ("params", [0, 1])])
def test_edited_optimizer_group_is_refused(tmp_path: Path, family: str, key: str, value: Any) -> None:
    src = _saved(tmp_path, family, **(_PPO if family == "ppo" else _R2D2), steps=16 if family == "ppo" else 24)
    path = _edit_meta(src, tmp_path / "edited.tracerl", _optim_group(key, value))
    with pytest.raises(CheckpointError) as err:
        TraceRL.load(path, env=CUE, verbose=0)
    assert err.value.path == str(path)
    assert err.value.entry is not None and "optim_param_groups" in err.value.entry, err.value


@pytest.mark.faults("A re-hashed checkpoint whose Adam moments have another shape, NaN, a negative second moment, a missing key, or name a parameter that does not exist | CheckpointError naming the tensor | none")
@pytest.mark.parametrize("edit", ["shape", "nan", "negative_sq", "missing_step", "index_out_of_range", "unknown_key"])
def test_edited_optimizer_state_is_refused(tmp_path: Path, edit: str) -> None:
    src = _saved(tmp_path, "ppo", **_PPO)
    tensors, meta, kind = read_raw(src)
    if edit == "shape":
        tensors["optim.2.exp_avg"] = torch.zeros(3, 3)
    elif edit == "nan":
        tensors["optim.2.exp_avg"] = torch.full_like(tensors["optim.2.exp_avg"], float("nan"))
    elif edit == "negative_sq":
        tensors["optim.2.exp_avg_sq"] = -torch.ones_like(tensors["optim.2.exp_avg_sq"])
    elif edit == "missing_step":
        del tensors["optim.2.step"]
    elif edit == "index_out_of_range":
        tensors["optim.99.step"] = torch.tensor(1.0)
    else:
        tensors["optim.2.momentum_buffer"] = torch.zeros_like(tensors["optim.2.exp_avg"])
    path = tmp_path / "edited.tracerl"
    write_rehashed(path, tensors, meta, kind)
    with pytest.raises(CheckpointError) as err:
        TraceRL.load(path, env=CUE, verbose=0)
    assert err.value.entry is not None and err.value.entry.startswith("optim."), err.value



_REINFORCE = dict(env=CUE, env_kwargs={"delay": 6}, algo="reinforce", n_envs=2, n_steps=5, hidden_size=8,
                  encoder_hidden=(16,), seed=0, verbose=0, max_episode_steps=50)


def _held_back_edit(edit: str) -> Callable[[dict[str, torch.Tensor]], None]:
    def apply(t: dict[str, torch.Tensor]) -> None:
        length = t["collector.episodes.length"]
        if edit == "length_3_envs":
            t["collector.episodes.length"] = torch.zeros(3, dtype=length.dtype)
        elif edit == "length_negative":
            t["collector.episodes.length"] = torch.tensor([-1, int(length[1])], dtype=length.dtype)
        elif edit == "length_past_the_rows":
            t["collector.episodes.length"] = length + 1
        elif edit == "length_past_max_episode_steps":
            t["collector.episodes.length"] = torch.full_like(length, 51)
        elif edit == "length_float":
            t["collector.episodes.length"] = length.float()
        elif edit == "whole_missing":
            del t["collector.episodes.whole"]
        elif edit == "rows_short":
            t["collector.episodes.rows.obs"] = t["collector.episodes.rows.obs"][:1]
        elif edit == "rows_3_envs":
            obs = t["collector.episodes.rows.obs"]
            t["collector.episodes.rows.obs"] = torch.zeros(obs.shape[0], 3, *obs.shape[2:])
        elif edit == "rows_field_missing":
            del t["collector.episodes.rows.reward"]
        elif edit == "rows_field_unknown":
            t["collector.episodes.rows.bonus"] = torch.zeros_like(t["collector.episodes.rows.reward"])
        elif edit == "rows_nan":
            t["collector.episodes.rows.reward"] = torch.full_like(t["collector.episodes.rows.reward"], float("nan"))
        else:
            raise AssertionError(edit)

    return apply


def test_reinforce_held_back_steps_reload_faithfully(tmp_path: Path) -> None:
    agent = TraceRL(**_REINFORCE)
    agent.learn(20)
    held = agent.collector.carry_tensors()
    assert int(agent.collector.episodes.length.max()) > 0  # the edits below have rows to work on
    agent.save(tmp_path / "a.tracerl")
    loaded = TraceRL.load(tmp_path / "a.tracerl", env=CUE, verbose=0)
    again = loaded.collector.carry_tensors()
    assert sorted(again) == sorted(held) and all(torch.equal(again[k], held[k]) for k in held)


@pytest.mark.faults("A re-hashed REINFORCE checkpoint whose held-back episode steps do not fit (other env count, "
                    "negative or too long lengths, rows short, missing, unknown or NaN) | CheckpointError naming "
                    "the file and the collector.episodes entry | none")
@pytest.mark.parametrize("edit", ["length_3_envs", "length_negative", "length_past_the_rows",
                                  "length_past_max_episode_steps", "length_float", "whole_missing", "rows_short",
                                  "rows_3_envs", "rows_field_missing", "rows_field_unknown", "rows_nan"])
def test_edited_reinforce_held_back_steps_are_refused(tmp_path: Path, edit: str) -> None:
    agent = TraceRL(**_REINFORCE)
    agent.learn(20)
    assert int(agent.collector.episodes.length.min()) > 0
    agent.save(tmp_path / "a.tracerl")
    tensors, meta, kind = read_raw(tmp_path / "a.tracerl")
    _held_back_edit(edit)(tensors)
    path = tmp_path / "edited.tracerl"
    write_rehashed(path, tensors, meta, kind)
    with pytest.raises(CheckpointError) as err:
        TraceRL.load(path, env=CUE, verbose=0)
    assert err.value.path == str(path)
    assert err.value.entry is not None and err.value.entry.startswith("collector.episodes"), err.value

# The fuzz: every entry of a real checkpoint, edited one at a time (deleted, retyped, reshaped, NaN, negative, huge,
# shorter or longer lists, flipped flags), then re-hashed. Each variant must be refused with a CheckpointError, or
# load into an agent that holds exactly what the file says (re-saving it gives back the file, with defaults for
# deleted optional keys) and then trains without error.

_MISSING = object()


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> Any:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node[:3]):
            yield from _leaves(value, path + (i,))
    yield path, node


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        node = node[key]
    return node


def _meta_variants(meta: dict[str, Any]) -> Any:
    for path, value in list(_leaves(meta)):
        if not path:
            continue
        name = "meta." + ".".join(map(str, path))

        def setter(new: Any, path: tuple[Any, ...] = path) -> Callable[[dict[str, Any]], None]:
            def edit(m: dict[str, Any]) -> None:
                _get(m, path[:-1])[path[-1]] = new

            return edit

        if isinstance(_get(meta, path[:-1]), dict):
            def delete(m: dict[str, Any], path: tuple[Any, ...] = path) -> None:
                del _get(m, path[:-1])[path[-1]]

            yield f"{name}:delete", delete
        if isinstance(value, bool):
            yield f"{name}:flip", setter(not value)
            yield f"{name}:str", setter("x")
        elif isinstance(value, (int, float)):
            for new, tag in ((-1, "neg"), (float("nan"), "nan"), (10**9, "huge"), (str(value), "str"),
                             (None, "null"), (0.5, "half")):
                yield f"{name}:{tag}", setter(new)
        elif isinstance(value, str):
            yield f"{name}:str", setter("x")
            yield f"{name}:int", setter(3)
        elif value is None:
            yield f"{name}:int", setter(3)
            yield f"{name}:str", setter("x")
        elif isinstance(value, list):
            yield f"{name}:dict", setter({})
            if value:
                yield f"{name}:shorter", setter(value[:-1])
            yield f"{name}:longer", setter(value + (value[-1:] if value else [1]))
        elif isinstance(value, dict):
            yield f"{name}:list", setter([])


def _tensor_variants(tensors: dict[str, torch.Tensor]) -> Any:
    for name, value in tensors.items():
        def delete(ts: dict[str, torch.Tensor], name: str = name) -> None:
            del ts[name]

        def retype(ts: dict[str, torch.Tensor], name: str = name) -> None:
            ts[name] = ts[name].to(torch.float64 if ts[name].dtype != torch.float64 else torch.float32)

        def reshape(ts: dict[str, torch.Tensor], name: str = name) -> None:
            flat = ts[name].reshape(-1)
            ts[name] = torch.cat([flat, flat[:1]]) if flat.numel() else torch.zeros(1, dtype=flat.dtype)

        yield f"{name}:delete", delete
        yield f"{name}:dtype", retype
        yield f"{name}:shape", reshape
        if value.numel() and (value.is_floating_point() or value.dtype == torch.int64):
            for tag, new in (("nan", float("nan")), ("neg", -(10**6)), ("big", 10**6)):
                if tag == "nan" and not value.is_floating_point():
                    continue

                def poke(ts: dict[str, torch.Tensor], name: str = name, new: float = new) -> None:
                    x = ts[name].clone()
                    x.reshape(-1)[0] = new
                    ts[name] = x

                yield f"{name}:{tag}", poke


def _defaults() -> dict[tuple[Any, ...], Any]:
    from tracerl.agent_config import OPTION_CLASSES, make_option, options_to_json
    from tracerl.algos.ppo import PPOConfig
    from tracerl.algos.r2d2 import R2D2Config
    from tracerl.policies.policy import PolicyConfig

    out: dict[tuple[Any, ...], Any] = {("env_id",): None, ("seed",): None, ("env_kwargs",): {},
                                       ("counters", "schedule_end"): 0, ("counters", "consecutive_skips"): 0}
    for section, cfg in (("ppo", PPOConfig()), ("config", R2D2Config()), ("policy", PolicyConfig(memory="gru"))):
        out.update({(section, k): v for k, v in cfg.to_json().items()})
    extras = options_to_json({g: make_option(c, "on_policy") for g, c in OPTION_CLASSES.items()})  # all options
    out.update({("extras", k): v for k, v in extras.items()})
    return out


def _json_equal(a: Any, b: Any) -> bool:
    if json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True):
        return True
    numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
    return numbers and a == b  # -1 and -1.0: the same number


def _differences(orig: tuple[dict, dict], variant: tuple[dict, dict], resaved: tuple[dict, dict],
                 defaults: dict[tuple[Any, ...], Any]) -> list[Any]:
    """Where a re-saved agent differs from the variant file (or, for a deleted entry, from both the original and the
    field's default)."""
    diffs: list[Any] = []

    def walk(o: Any, v: Any, n: Any, path: tuple[Any, ...]) -> None:
        if v is _MISSING:
            if not _json_equal(n, o) and not (path in defaults and _json_equal(n, defaults[path])):
                diffs.append(path)
        elif isinstance(n, dict) and isinstance(v, dict):
            for key in n:
                walk(o.get(key, _MISSING) if isinstance(o, dict) else _MISSING, v.get(key, _MISSING), n[key],
                     path + (key,))
        elif isinstance(n, list) and isinstance(v, list) and len(n) == len(v):
            for i in range(len(n)):
                walk(o[i] if isinstance(o, list) and i < len(o) else _MISSING, v[i], n[i], path + (i,))
        elif not _json_equal(v, n):
            diffs.append(path)

    walk(orig[1], variant[1], resaved[1], ())
    diffs = [d for d in diffs if d != ("tracerl_version",)]
    for name, x in resaved[0].items():
        ref = variant[0].get(name, orig[0].get(name))
        if ref is None or ref.dtype != x.dtype or ref.shape != x.shape or not torch.equal(
                torch.nan_to_num(ref) if ref.is_floating_point() else ref,
                torch.nan_to_num(x) if x.is_floating_point() else x):
            diffs.append(name)
    return diffs


_MUST_TRY = ("optim_param_groups.0.lr:neg", "optim_param_groups.0.lr:nan", "optim_param_groups.0.maximize:flip",
             "optim_param_groups.q.0.lr:neg", "optim_param_groups.q.0.maximize:flip", "counters.num_timesteps:str",
             "rng.python_random.internal:shorter", "collector.state", "replay.row_slot:big", "env.t:neg",
             "extra.act_rng:shape", "rng/torch_cpu:dtype", "optim.0.exp_avg:shape", "optim.q.0.exp_avg:shape",
             "optim_param_groups.actor.0.lr:neg", "optim_param_groups.alpha.0.maximize:flip", "extra.log_alpha")


def _fuzz(tmp_path: Path, family: str, every: int) -> tuple[int, int, int, list[tuple[str, str]]]:
    """Run every ``every``-th variant (and those naming an entry of _MUST_TRY); return (tried, refused, loaded,
    failures)."""
    import zlib

    kwargs, steps, learn = {"ppo": (_PPO, 16, 16), "r2d2": (_R2D2, 24, 8), "sac": (_SAC, 24, 8)}[family]
    src = _saved(tmp_path, family, steps=steps, **kwargs)
    orig_t, orig_m, kind = read_raw(src)
    defaults = _defaults()
    variants = [*_meta_variants(orig_m), *_tensor_variants(orig_t)]
    chosen = [(n, e) for n, e in variants
              if zlib.crc32(n.encode()) % every == 0 or any(m in n for m in _MUST_TRY)]
    refused = loaded = 0
    failures: list[tuple[str, str]] = []
    path, again = tmp_path / "variant.tracerl", tmp_path / "resaved.tracerl"
    for name, edit in chosen:
        tensors, meta = dict(orig_t), copy.deepcopy(orig_m)
        edit(meta if name.startswith("meta.") else tensors)
        write_rehashed(path, tensors, meta, kind)
        try:
            agent = TraceRL.load(path, env=CUE, verbose=0)
        except CheckpointError as exc:
            refused += 1
            if exc.path != str(path):
                failures.append((name, f"CheckpointError without the file: {exc}"))
            continue
        except Exception as exc:  # noqa: BLE001 - the point of the test
            failures.append((name, f"load raised {type(exc).__name__}: {exc}"))
            continue
        try:
            agent.save(again)
            new_t, new_m, _ = read_raw(again)
            diffs = _differences((orig_t, orig_m), (tensors, meta), (new_t, new_m), defaults)
            agent.learn(learn, reset_num_timesteps=False)
        except Exception as exc:  # noqa: BLE001
            failures.append((name, f"loaded, then {type(exc).__name__}: {exc}"))
            continue
        if diffs:
            failures.append((name, f"loaded but the agent differs from the file at {diffs[:3]}"))
        else:
            loaded += 1
    return len(chosen), refused, loaded, failures


@pytest.mark.faults("Fuzz: a sample of edited-but-re-hashed variants of a PPO, an R2D2 and a SAC checkpoint (entries deleted, retyped, reshaped, NaN, negative, huge, lists shortened or lengthened, flags flipped) | each is a CheckpointError naming the file, or loads into an agent holding exactly what the file says and trains | none")
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("family", ["ppo", "r2d2", "sac"])
def test_fuzzed_checkpoint_is_refused_or_loaded_faithfully(tmp_path: Path, family: str) -> None:
    tried, refused, loaded, failures = _fuzz(tmp_path, family, every={"ppo": 16, "r2d2": 24, "sac": 60}[family])
    assert tried >= 60 and refused > 0 and loaded > 0, (tried, refused, loaded)
    assert not failures, "\n".join(f"{name}: {why}" for name, why in failures)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("family", ["ppo", "r2d2"])
def test_every_fuzzed_checkpoint_variant_is_refused_or_loaded_faithfully(tmp_path: Path, family: str) -> None:
    """The whole fuzz (914 PPO and 1,268 R2D2 variants, several minutes): run with ``-m slow``."""
    tried, refused, loaded, failures = _fuzz(tmp_path, family, every=1)
    assert not failures, "\n".join(f"{name}: {why}" for name, why in failures)


@pytest.mark.parametrize("family", ["ppo", "r2d2"])
def test_replaced_load_limits_apply_to_every_check(tmp_path: Path, monkeypatch, family: str) -> None:
    import dataclasses

    from tracerl.io import restore_checks

    path = _saved(tmp_path, family, **(_PPO if family == "ppo" else _R2D2), steps=16 if family == "ppo" else 24)
    TraceRL.load(path, env=CUE, verbose=0)  # loads at the default limits
    field, entry = (("max_rollout_steps", "meta.ppo.n_steps") if family == "ppo"
                    else ("max_replay_bytes", "meta.config.buffer_size"))
    monkeypatch.setattr(restore_checks, "LIMITS", dataclasses.replace(restore_checks.LIMITS, **{field: 1}))
    with pytest.raises(CheckpointError) as err:
        TraceRL.load(path, env=CUE, verbose=0)
    assert err.value.entry == entry


def test_a_checkpoint_from_before_adam_impl_loads_and_keeps_the_live_kernel(tmp_path: Path) -> None:
    """Files written before ``adam_impl`` existed say foreach/fused null and have no adam_impl: they load, and the
    optimizer runs the config's kernel (the kernel is not part of the algorithm, so it is not an edited option)."""
    src = _saved(tmp_path, "ppo", **_PPO)

    def as_before(meta: dict[str, Any]) -> None:
        for group in meta["optim_param_groups"]:
            group["foreach"], group["fused"] = None, None
        del meta["ppo"]["adam_impl"]

    path = _edit_meta(src, tmp_path / "before.tracerl", as_before)
    agent = TraceRL.load(path, env=CUE, verbose=0)
    assert agent.config.adam_impl == "fused" and agent.ppo.optimizer.param_groups[0]["fused"] is True
    agent.learn(16)


@pytest.mark.faults("A re-hashed checkpoint whose optimizer group has foreach/fused of another type than bool or null | CheckpointError naming the group's entry | none")
def test_a_kernel_option_of_the_wrong_type_is_refused(tmp_path: Path) -> None:
    src = _saved(tmp_path, "ppo", **_PPO)
    path = _edit_meta(src, tmp_path / "edited.tracerl", _optim_group("fused", "yes"))
    with pytest.raises(CheckpointError) as err:
        TraceRL.load(path, env=CUE, verbose=0)
    assert err.value.entry is not None and err.value.entry.endswith(".fused"), err.value
