"""Every field of every config is validated in one place (tracerl.config_checks), with one ConfigError form."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Literal

import pytest
import torch

from tracerl import TraceRL
from tracerl.agent_config import EnvConfig, ExploreConfig, MemoryAgentConfig, RetentionConfig
from tracerl.algos.auxiliary import ConfidenceAuxModule, CueAuxModule
from tracerl.algos.offpolicy import OffPolicyConfig
from tracerl.algos.ppo import PPOConfig
from tracerl.algos.r2d2 import R2D2Config
from tracerl.algos.sac import SACConfig
from tracerl.algos.td3 import TD3Config
from tracerl.config_checks import field_ranges
from tracerl.errors import ConfigError
from tracerl.policies.policy import PolicyConfig

CONFIGS = (PPOConfig, PolicyConfig, MemoryAgentConfig, RetentionConfig, ExploreConfig, EnvConfig, OffPolicyConfig, SACConfig, TD3Config, R2D2Config)


def _base(typ: Any) -> Any:
    """The annotation without Optional."""
    if typing.get_origin(typ) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        inner = [a for a in typing.get_args(typ) if a is not type(None)]
        return inner[0] if len(inner) == 1 else typ
    return typ


def _bad_cases(cls: type) -> list[tuple[str, str, Any]]:
    """(field, kind, value) for every field: a wrong type, and where they apply NaN, inf, a negative value outside
    the field's range, a float for an int, and a huge int."""
    hints = typing.get_type_hints(cls)
    ranges = field_ranges(cls)
    cases: list[tuple[str, str, Any]] = []
    for f in dataclasses.fields(cls):
        typ = _base(hints[f.name])
        rng = ranges.get(f.name)
        origin = typing.get_origin(typ)
        if typ is str or origin is Literal:
            cases += [(f.name, "wrong_type", 3), (f.name, "huge_string", "x" * 10_000)]
            if origin is Literal:
                cases.append((f.name, "not_a_choice", "no-such-choice"))
            continue
        cases.append((f.name, "wrong_type", "x"))
        if typ is bool:
            cases.append((f.name, "int_for_bool", 2))
        elif typ is float:
            cases += [(f.name, "nan", float("nan")), (f.name, "inf", float("inf")), (f.name, "-inf", float("-inf"))]
            if rng is not None and not rng.contains(-2.5):
                cases.append((f.name, "negative", -2.5))
        elif typ is int:
            cases += [(f.name, "float", 4.0), (f.name, "huge", 2**70)]
            if rng is not None and not rng.contains(-2):
                cases.append((f.name, "negative", -2))
        elif origin is tuple:
            item = typing.get_args(typ)[0]
            cases += [(f.name, "item_wrong_type", (3,) if item is str else ("x",)), (f.name, "too_long", (1,) * 1000)]
            if item is int:
                cases += [(f.name, "item_huge", (2**70,)), (f.name, "item_negative", (-2,))]
        elif origin is dict:
            cases += [(f.name, "object_value", {"a": object()}), (f.name, "nan_value", {"a": float("nan")}),
                      (f.name, "non_identifier_key", {"a b": 1}), (f.name, "nested", {"a": {"b": 1}})]
    return cases


def _make_test(cls: type) -> Any:
    names = [f.name for f in dataclasses.fields(cls)]
    cases = _bad_cases(cls)

    @pytest.mark.faults(f"{cls.__name__}: a wrong type, NaN, inf, an out-of-range negative, a float for an int or a "
                        f"huge value in any of its {len(names)} fields ({', '.join(names)}) | ConfigError "
                        f"'{cls.__name__}.<field>=<value> is invalid: must be <range>' at construction | none")
    @pytest.mark.parametrize("field, kind, value", cases, ids=[f"{f}-{k}" for f, k, _ in cases])
    def test(field: str, kind: str, value: Any) -> None:
        with pytest.raises(ConfigError) as info:
            cls(**{field: value})
        assert f"{cls.__name__}.{field}" in str(info.value)
        assert "is invalid: must be" in str(info.value)

    test.__doc__ = f"Every field of {cls.__name__} rejects values of the wrong kind with a ConfigError naming it."
    return test


test_ppo_config_rejects_bad_values_in_every_field = _make_test(PPOConfig)
test_policy_config_rejects_bad_values_in_every_field = _make_test(PolicyConfig)
test_memory_agent_config_rejects_bad_values_in_every_field = _make_test(MemoryAgentConfig)
test_retention_config_rejects_bad_values_in_every_field = _make_test(RetentionConfig)
test_explore_config_rejects_bad_values_in_every_field = _make_test(ExploreConfig)
test_env_config_rejects_bad_values_in_every_field = _make_test(EnvConfig)
test_offpolicy_config_rejects_bad_values_in_every_field = _make_test(OffPolicyConfig)
test_sac_config_rejects_bad_values_in_every_field = _make_test(SACConfig)
test_td3_config_rejects_bad_values_in_every_field = _make_test(TD3Config)
test_r2d2_config_rejects_bad_values_in_every_field = _make_test(R2D2Config)


@pytest.mark.parametrize("cls", CONFIGS)
def test_every_field_gets_at_least_a_type_case_and_defaults_are_valid(cls):
    covered = {f for f, _, _ in _bad_cases(cls)}
    assert covered == {f.name for f in dataclasses.fields(cls)}
    cls()  # the defaults pass


def test_a_reassigned_field_is_checked_by_validate():
    cfg = PPOConfig()
    cfg.max_grad_norm = float("nan")
    with pytest.raises(ConfigError, match="PPOConfig.max_grad_norm=nan"):
        cfg.validate()


@pytest.mark.faults("The issue's cases through TraceRL(...): adam_eps=inf, max_grad_norm=NaN, ent_coef=NaN, "
                    "vf_coef=inf, n_steps='64', n_steps=64.0, hidden_size=8.0 | ConfigError naming the field before "
                    "anything is built (no raw TypeError, no silent no-op training) | none")
@pytest.mark.parametrize("kwargs", [{"adam_eps": float("inf")}, {"max_grad_norm": float("nan")},
                                    {"ent_coef": float("nan")}, {"vf_coef": float("inf")}, {"n_steps": "64"},
                                    {"n_steps": 64.0}, {"hidden_size": 8.0}])
def test_agent_hyperparameters_of_the_wrong_kind_are_config_errors(kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ConfigError, match=f"{name}="):
        TraceRL(env="tracerl/CueDelay-v0", n_envs=2, verbose=0, **kwargs)


@pytest.mark.faults("Agent seed 2**70, -1 or 1.5; threads 0 or 10**6; device 'cuda' on a CPU build or 'nonsense'; "
                    "verbose 'x' | ConfigError naming the argument and its valid range | none")
@pytest.mark.parametrize("algo", ["ppo", "sac"])
@pytest.mark.parametrize("kwargs", [{"seed": 2**70}, {"seed": -1}, {"seed": 1.5}, {"seed": "0"}, {"threads": 0},
                                    {"threads": 10**6}, {"device": "nonsense"}, {"device": 3}, {"verbose": "x"}]
                         + ([] if torch.cuda.is_available() else [{"device": "cuda"}]))
def test_agent_arguments_are_checked(algo, kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ConfigError, match=f"TraceRL.{name}="):
        TraceRL(env="tracerl/CountWindow-v0" if algo == "sac" else "tracerl/CueDelay-v0", algo=algo, n_envs=2,
                **({"verbose": 0} if name != "verbose" else {}), **kwargs)


def test_a_large_valid_seed_still_works():
    agent = TraceRL(env="tracerl/CueDelay-v0", n_envs=2, n_steps=8, batch_size=16, verbose=0, seed=2**32 - 1)
    assert agent.seed == 2**32 - 1


@pytest.mark.parametrize("make, name", [
    (lambda: CueAuxModule(8, n_classes=10**9), "n_classes"), (lambda: CueAuxModule(8, coef=float("inf")), "coef"),
    (lambda: CueAuxModule(8, coef=float("nan")), "coef"), (lambda: CueAuxModule(8.0), "feat_dim"),
    (lambda: ConfidenceAuxModule(8, hidden="32"), "hidden"),
])
def test_aux_module_arguments_are_checked(make, name):
    with pytest.raises(ConfigError, match=f"{name}="):
        make()
