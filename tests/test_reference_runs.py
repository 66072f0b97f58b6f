"""The reference runs of ``benchmarks/reference_runs.py`` (fixed-seed trainings reduced to hashes) still give the
recorded hashes: a refactor that moves behaviour fails here (the full set: ``python benchmarks/reference_runs.py
--check``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "reference_runs.py"


def _module():
    spec = importlib.util.spec_from_file_location("reference_runs", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["a2c_gru", "sac_gru"])
def test_cheap_reference_runs_give_the_recorded_hashes(name):
    ref = _module()
    recorded = ref.load_reference()
    env = ref.environment()
    if env["torch"] != recorded["environment"]["torch"] or env["cpu"] != recorded["environment"]["cpu"]:
        pytest.skip(f"hashes recorded with torch {recorded['environment']['torch']} on "
                    f"{recorded['environment']['cpu']}; this is torch {env['torch']} on {env['cpu']}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert ref.run_one(name) == recorded["runs"][name]
    finally:
        torch.set_num_threads(threads)
