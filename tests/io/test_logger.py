"""Logger: console table, CSV with a widening header, TensorBoard events, record vs record_mean."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from tracerl.io import Logger
from tracerl.io.logger import format_table, format_value


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def test_console_table_groups_keys(capsys) -> None:
    logger = Logger()
    logger.record("rollout/ep_len_mean", 16.0)
    logger.record("rollout/ep_rew_mean", 0.0625)
    logger.record("time/fps", 142)
    logger.record("time/progress", "10.0%")
    logger.record("train/loss", -2.677)
    logger.dump(step=1)
    lines = capsys.readouterr().out.strip().splitlines()

    assert lines[0] == lines[-1] and set(lines[0]) == {"-"}
    assert all(len(line) == len(lines[0]) for line in lines)
    text = "\n".join(lines)
    expected = ("| rollout/", "|    ep_len_mean", "16.000", "0.062", "| time/", "fps", "10.0%", "train/", "-2.677")
    for fragment in expected:
        assert fragment in text, fragment
    fps_line = next(line for line in lines if "fps" in line)
    assert "142 " in fps_line and "142." not in fps_line
    order = [next(i for i, line in enumerate(lines) if f"| {g}/" in line) for g in ("rollout", "time", "train")]
    assert order == sorted(order)


def test_groups_keep_first_recorded_order(capsys) -> None:
    logger = Logger()
    logger.record("train/loss", 1.0)
    logger.record("rollout/ep_rew_mean", 2.0)
    logger.dump(0)
    out = capsys.readouterr().out
    assert out.index("train/") < out.index("rollout/")


def test_number_formatting() -> None:
    assert format_value(3) == "3"
    assert format_value(0.0625) == "0.062"
    assert format_value(0.0) == "0.000"
    assert format_value(1.5e-7) == "1.5e-07"
    assert format_value(2.5e9) == "2.5e+09"
    assert format_value(float("nan")) == "nan"
    assert format_value(float("-inf")) == "-inf"
    assert "ungrouped" in format_table({"ungrouped": 1, "g/a": 2.0})


def test_record_keeps_latest_and_record_mean_averages() -> None:
    logger = Logger(formats=())
    logger.record("a", 1.0)
    logger.record("a", 5.0)
    for v in (1.0, 2.0, 6.0):
        logger.record_mean("m", v)
    logger.record_mean("i", 1)
    logger.record_mean("i", 2)
    assert logger.dump(3) == {"a": 5.0, "m": 3.0, "i": 1.5}
    assert logger.dump(4) == {}
    logger.record_mean("m", 10.0)
    assert logger.dump(5) == {"m": 10.0}


def test_record_mean_rejects_strings_and_record_rejects_objects() -> None:
    logger = Logger(formats=())
    with pytest.raises(TypeError, match="'m'"):
        logger.record_mean("m", "x")
    with pytest.raises(TypeError, match="'o'"):
        logger.record("o", object())


def test_csv_widens_header_and_keeps_old_rows(tmp_path: Path) -> None:
    with Logger(tmp_path, formats=("csv",)) as logger:
        logger.record("a", 1)
        logger.record("b/x", 2.5)
        logger.dump(1)
        logger.record("a", 3)
        logger.dump(2)
        logger.record("c", float("nan"))
        logger.record("b/x", 4.0)
        logger.dump(3)
    header, rows = _read_csv(tmp_path / "progress.csv")
    assert header == ["a", "b/x", "c"]
    assert rows == [
        {"a": "1", "b/x": "2.5", "c": ""},
        {"a": "3", "b/x": "", "c": ""},
        {"a": "", "b/x": "4.0", "c": "nan"},
    ]
    assert math.isnan(float(rows[2]["c"]))
    assert [p.name for p in tmp_path.iterdir()] == ["progress.csv"]


def test_tensorboard_writes_events(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with Logger(tmp_path, formats=("tensorboard",)) as logger:
        logger.record("train/loss", 0.5)
        logger.record("time/progress", "50%")
        logger.record("bad", float("nan"))
        logger.dump(10)
        logger.record("train/loss", 0.25)
        logger.dump(20)
    events = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert events
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    scalars = acc.Scalars("train/loss")
    assert [(s.step, s.value) for s in scalars] == [(10, 0.5), (20, 0.25)]
    assert math.isnan(acc.Scalars("bad")[0].value)
    assert "time/progress" not in acc.Tags()["scalars"]


def test_console_every_dump_false_prints_only_on_request(capsys) -> None:
    logger = Logger(console_every_dump=False)
    logger.record("k", 1)
    logger.dump(1)
    assert capsys.readouterr().out == ""
    logger.record("k", 2)
    logger.dump(2, console=True)
    assert "k" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"formats": ("console", "json")}, "'json'"),
        ({"formats": ("csv",)}, "'csv'"),
        ({"formats": ("tensorboard",)}, "'tensorboard'"),
    ],
)
def test_bad_formats_raise(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Logger(**kwargs)


def test_dump_after_close_raises(tmp_path: Path) -> None:
    logger = Logger(tmp_path, formats=("csv",))
    logger.close()
    logger.close()
    logger.record("a", 1)
    with pytest.raises(ValueError, match="closed"):
        logger.dump(1)


def test_csv_append_continues_an_existing_log(tmp_path):
    from tracerl.io.logger import Logger

    with Logger(tmp_path, formats=("csv",)) as lg:
        lg.record("a", 1)
        lg.dump(1)
    with Logger(tmp_path, formats=("csv",), append=True) as lg:
        lg.record("a", 2)
        lg.record("b", 3)
        lg.dump(2)
    lines = (tmp_path / "progress.csv").read_text().splitlines()
    assert lines[0].split(",") == ["a", "b"]
    assert lines[1:] == ["1,", "2,3"]


def test_a_resumed_log_drops_the_rows_written_after_its_checkpoint(tmp_path):
    """A run killed after its last checkpoint logged steps 3-4 again when resumed from step 2: those rows
    of the killed run are dropped, so every step appears once."""
    from tracerl.io.logger import Logger

    with Logger(tmp_path, formats=("csv",)) as lg:
        for step in (1, 2, 3, 4):
            lg.record("time/total_timesteps", step)
            lg.record("loss", 10 * step)
            lg.dump(step)
    with Logger(tmp_path, formats=("csv",), append=True, resume_step=2) as lg:
        for step in (3, 4):
            lg.record("time/total_timesteps", step)
            lg.record("loss", -step)
            lg.dump(step)
    lines = (tmp_path / "progress.csv").read_text().splitlines()
    assert lines == ["time/total_timesteps,loss", "1,10", "2,20", "3,-3", "4,-4"]


def test_a_resumed_log_purges_the_tensorboard_events_written_after_its_checkpoint(tmp_path):
    """The killed run logged step 3 after its checkpoint at step 2; the resumed run logs step 3 again. TensorBoard
    must show step 3 once, with the resumed value (the new event file purges steps > 2)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with Logger(tmp_path, formats=("tensorboard",)) as lg:
        for step in (1, 2, 3):
            lg.record("loss", 10.0 * step)
            lg.dump(step)
    with Logger(tmp_path, formats=("tensorboard",), append=True, resume_step=2) as lg:
        for step in (3, 4):
            lg.record("loss", -float(step))
            lg.dump(step)
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert [(s.step, s.value) for s in acc.Scalars("loss")] == [(1, 10.0), (2, 20.0), (3, -3.0), (4, -4.0)]


def test_a_resumed_tensorboard_file_sorts_after_the_old_ones_even_when_the_counter_would_not(tmp_path, monkeypatch):
    # Event files are read in name order; within one second and one process the names differ only by a counter
    # compared as a string, so a resumed run's file numbered 10 would be read before an old one numbered 9.
    from tensorboard.summary.writer import event_file_writer

    monkeypatch.setattr(event_file_writer._global_uid, "_value", 9)
    with Logger(tmp_path, formats=("tensorboard",)) as lg:
        lg.record("loss", 1.0)
        lg.dump(1)
    old = sorted((tmp_path / "tb").glob("events.out.tfevents.*"))
    monkeypatch.setattr(event_file_writer._global_uid, "_value", 10)
    with Logger(tmp_path, formats=("tensorboard",), append=True, resume_step=1) as lg:
        lg.record("loss", 2.0)
        lg.dump(2)
    files = sorted((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert len(files) == 2 and files[0] == old[0]  # the resumed run's file is read last
