"""Run every fault-injection and bad-input scenario and write RELIABILITY.md.

The scenarios are the tests marked ``@pytest.mark.faults("what happens | outcome | data lost")``; this
script runs them (``pytest -m faults``), reads the JUnit XML, and writes one table row per scenario
with whether it held on this run.

    .venv/bin/python benchmarks/faults.py [--out RELIABILITY.md]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import OrderedDict
from pathlib import Path

from _common import git_commit, machine_info

ROOT = Path(__file__).resolve().parent.parent


def run_scenarios() -> tuple[list[dict[str, str]], int]:
    """Run the marked tests; return one row per scenario (parametrized cases merged) and pytest's exit code."""
    with tempfile.TemporaryDirectory() as tmp:
        xml_path = Path(tmp) / "faults.xml"
        # its own --basetemp: a pytest session beside another (a test suite) would otherwise delete its tmp dirs
        code = subprocess.call([sys.executable, "-m", "pytest", "-q", "-m", "faults", f"--junitxml={xml_path}",
                                f"--basetemp={Path(tmp) / 'pytest'}", "-p", "no:cacheprovider"], cwd=ROOT)
        tree = ET.parse(xml_path)
    rows: "OrderedDict[str, dict[str, str]]" = OrderedDict()
    for case in tree.iter("testcase"):
        prop = case.find("properties/property[@name='scenario']")
        if prop is None:
            continue
        what, outcome, lost = (part.strip() for part in prop.get("value", "").split("|"))
        failed = case.find("failure") is not None or case.find("error") is not None
        test = f"{case.get('classname', '').replace('.', '/')}.py::{case.get('name', '').split('[')[0]}"
        row = rows.setdefault(test, {"what": what, "outcome": outcome, "lost": lost, "test": test, "runs": "0",
                                     "held": "yes"})
        row["runs"] = str(int(row["runs"]) + 1)
        if failed:
            row["held"] = "NO"
    return list(rows.values()), code


def write_report(rows: list[dict[str, str]], out: Path) -> None:
    info = machine_info()
    lines = [
        "# tracerl reliability",
        "",
        "Faults injected and bad inputs tried, what tracerl does, and what is lost. Produced by",
        "`.venv/bin/python benchmarks/faults.py` from the tests marked `faults`; every row is a test that",
        "can fail, and these also run in CI.",
        "",
        f"Last run: commit `{git_commit(ROOT)[:7]}`, {info['date_utc']}, {info['cpu_model']}, "
        f"torch {info['versions']['torch']}.",
        "",
        "| fault or bad input | what tracerl does | data lost | held | test |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        runs = f" ({r['runs']} cases)" if r["runs"] != "1" else ""
        lines.append(f"| {r['what']} | {r['outcome']} | {r['lost']} | {r['held']}{runs} | `{r['test']}` |")
    lines += [
        "",
        "Not covered yet (issue 7): archive/path-entry checks for hostile checkpoints (a checkpoint is one",
        "safetensors file, which has no path entries); property-based fuzzing of the off-policy replay path;",
        "crashing envs under the off-policy algorithms (the resilient env wrapper is for the PPO family).",
        "",
    ]
    out.write_text("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "RELIABILITY.md")
    args = parser.parse_args()
    rows, code = run_scenarios()
    write_report(rows, args.out)
    held = sum(r["held"] == "yes" for r in rows)
    print(f"{held}/{len(rows)} scenarios held; wrote {args.out}")
    return 0 if code == 0 and held == len(rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
