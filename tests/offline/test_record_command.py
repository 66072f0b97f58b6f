"""``tracerl record``: writes a readable mixed dataset; bad policy specs are one-line errors (exit 2)."""

from __future__ import annotations

import pytest

pytest.importorskip("minari")

from tracerl.cli import main  # noqa: E402
from tracerl.offline import load_dataset  # noqa: E402


def test_record_writes_a_mixed_dataset(tmp_path, capsys):
    out = tmp_path / "cue"
    code = main(["record", "--env", "tracerl/TMazePassive-v0", "--env-kwargs", "corridor_length=3",
                 "--policy", "expert=4", "wrong=3", "random=5", "--out", str(out), "--n-envs", "3", "--seed", "2"])
    assert code == 0
    ds = load_dataset(out)
    assert ds.policy_counts() == {"expert": 4, "wrong": 3, "random": 5}
    assert ds.env_id == "tracerl/TMazePassive-v0" and ds.env_kwargs == {"corridor_length": 3}
    assert all(ep.success for ep in ds if ep.policy == "expert")
    assert not any(ep.success for ep in ds if ep.policy == "wrong")
    printed = capsys.readouterr().out
    assert "12 episodes" in printed and "expert" in printed
    # a second run into the same directory is refused without --overwrite, and nothing is changed
    assert main(["record", "--env", "tracerl/TMazePassive-v0", "--policy", "random=1", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert len(load_dataset(out)) == 12


@pytest.mark.parametrize("spec, message", [("expert", "NAME=EPISODES"), ("expert=x", "not an int"),
                                           ("oracle=3", "'oracle' is not")])
def test_bad_policy_specs_are_named(tmp_path, capsys, spec, message):
    code = main(["record", "--env", "tracerl/CueDelay-v0", "--policy", spec, "--out", str(tmp_path / "x")])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
