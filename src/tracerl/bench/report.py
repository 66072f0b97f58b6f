"""A suite's lasting outputs: ``runs.csv`` (one row per run), ``report.md`` (tables and figures) and the
PNG figures, all rebuilt from the run records at the end of every invocation."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from . import plots
from .agents import SB3_AGENTS, TRACERL_PREFIX
from .provenance import cpu_model, package_versions
from .stats import (interval_estimates, performance_profiles, probability_of_improvement, run_score,
                    score_matrices)
from .suites import Suite

CSV_FIELDS: tuple[str, ...] = (
    "run_id", "status", "agent", "env", "seed", "budget", "train_steps", "train_seconds", "wall_seconds",
    "steps_per_second", "steps_to_threshold", "seconds_to_threshold", "success_deterministic",
    "return_deterministic", "return_std_deterministic", "success_stochastic", "return_stochastic",
    "return_std_stochastic", "git_commit", "error",
)


def _table(rows: list[list[Any]], headers: Sequence[str]) -> str:
    from tabulate import tabulate

    return tabulate(rows, headers=list(headers), tablefmt="github", disable_numparse=True)


def csv_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """One ``runs.csv`` row of a run record."""
    row: dict[str, Any] = {"run_id": record["run_id"], "status": record["status"], "agent": record["agent"],
                           "env": record["env_label"], "seed": record["seed"], "budget": record["budget"],
                           "git_commit": record.get("git_commit", ""), "error": record.get("error", "")}
    m = record.get("metrics")
    if m:
        row.update({k: m[k] for k in ("train_steps", "train_seconds", "wall_seconds", "steps_per_second",
                                      "steps_to_threshold", "seconds_to_threshold")})
        for mode, res in m["final"].items():
            row[f"success_{mode}"] = res["success_rate"]
            row[f"return_{mode}"] = res["mean_return"]
            row[f"return_std_{mode}"] = res["std_return"]
    return row


def write_csv(records: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Write ``runs.csv``."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(CSV_FIELDS), extrasaction="ignore")
        writer.writeheader()
        for r in records:
            writer.writerow(csv_row(r))
    return path


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def summary_rows(records: Sequence[Mapping[str, Any]], agents: Sequence[str], tasks: Sequence[str]
                 ) -> list[dict[str, Any]]:
    """Per env and agent: runs finished, mean final success (each mode), mean and std of the return,
    runs that reached the threshold, median steps / training seconds to it, median env-steps/s."""
    rows = []
    for task in tasks:
        for agent in agents:
            group = [r for r in records if r["env_label"] == task and r["agent"] == agent]
            if not group:
                continue
            ok = [r for r in group if r["status"] == "ok"]
            row: dict[str, Any] = {"env": task, "agent": agent, "runs": len(group), "ok": len(ok)}
            if ok:
                finals = [r["metrics"]["final"] for r in ok]
                for mode in finals[0]:
                    row[f"success_{mode}"] = float(np.mean([f[mode]["success_rate"] for f in finals]))
                first = next(iter(finals[0]))
                returns = [f[first]["mean_return"] for f in finals]
                row["return_mean"] = float(np.mean(returns))
                row["return_std"] = float(np.mean([f[first]["std_return"] for f in finals]))
                hits = [r["metrics"] for r in ok if r["metrics"]["steps_to_threshold"] is not None]
                row["solved"] = len(hits)
                row["steps_to_threshold"] = _median([h["steps_to_threshold"] for h in hits])
                row["seconds_to_threshold"] = _median([h["seconds_to_threshold"] for h in hits])
                row["steps_per_second"] = _median([r["metrics"]["steps_per_second"] for r in ok])
                row["train_steps"] = _median([r["metrics"]["train_steps"] for r in ok])
                row["wall_seconds"] = float(sum(r["metrics"]["wall_seconds"] for r in ok))
            rows.append(row)
    return rows


def _fmt(value: Any, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def summary_table(rows: Sequence[Mapping[str, Any]], threshold: float) -> str:
    """Markdown table of :func:`summary_rows`."""
    out = []
    for r in rows:
        out.append([
            r["env"], r["agent"], f"{r['ok']}/{r['runs']}",
            _fmt(r.get("success_deterministic"), ".3f"), _fmt(r.get("success_stochastic"), ".3f"),
            _fmt(r.get("return_mean"), ".3f"), _fmt(r.get("return_std"), ".3f"),
            f"{r.get('solved', 0)}/{r['ok']}", _fmt(r.get("steps_to_threshold"), ",.0f"),
            _fmt(r.get("seconds_to_threshold"), ".1f"), _fmt(r.get("steps_per_second"), ",.0f"),
            _fmt(r.get("wall_seconds"), ".1f"),
        ])
    pct = f"{threshold:.0%}"
    return _table(out, ["env", "agent", "runs ok", "success (det)", "success (stoch)", "mean return",
                        "std return", f"reached {pct}", f"steps to {pct}", f"train s to {pct}", "env-steps/s",
                        "wall s (sum)"])


def improvement_pairs(agents: Sequence[str]) -> list[tuple[str, str]]:
    """Each tracerl agent against each baseline; all pairs when the suite lacks either kind."""
    ours = [a for a in agents if a.startswith(TRACERL_PREFIX)]
    base = [a for a in agents if a in SB3_AGENTS]
    if ours and base:
        return [(x, y) for x in ours for y in base]
    return [(x, y) for i, x in enumerate(agents) for y in agents[i + 1:]]


def sweep_rows(records: Sequence[Mapping[str, Any]], suite: Suite, agents: Sequence[str],
               reps: int = 2000) -> list[dict[str, Any]]:
    """For a suite with ``sweep`` (e.g. ``delay``): per agent and per setting of the other env keywords,
    the longest swept value whose IQM final success over seeds reaches the threshold, the IQM with its
    CI there, and each seed's own longest solved value."""
    from rliable import metrics

    key, threshold = suite.sweep, suite.protocol.threshold
    if key is None:
        return []
    groups: dict[str, list[Any]] = {}
    for env in suite.envs:
        if key in env.kwargs:
            rest = {k: v for k, v in env.kwargs.items() if k != key}
            label = env.id.split("/")[-1] + (" " + ",".join(f"{k}={v}" for k, v in sorted(rest.items())) if rest else "")
            groups.setdefault(label, []).append(env)
    rows = []
    for label, envs in groups.items():
        envs = sorted(envs, key=lambda e: e.kwargs[key])
        for agent in agents:
            best, best_env, seed_best, tried = None, None, {}, 0
            for env in envs:
                scores = {int(r["seed"]): run_score(r) for r in records
                          if r["agent"] == agent and r["env_label"] == env.label and run_score(r) is not None}
                if not scores:
                    continue
                tried += 1
                if metrics.aggregate_iqm(np.asarray(list(scores.values()))[:, None]) >= threshold:
                    best, best_env = env.kwargs[key], env
                for seed, score in scores.items():
                    if score >= threshold:
                        seed_best[seed] = env.kwargs[key]
            if not tried:
                continue
            row: dict[str, Any] = {"group": label, "agent": agent, "longest": best, "per_seed": seed_best,
                                   "values_run": tried}
            if best_env is not None:
                mat = score_matrices(records, [agent], [best_env.label])
                if agent in mat:
                    row["iqm"] = interval_estimates(mat, reps=reps)[agent]["IQM"]
            rows.append(row)
    return rows


def sweep_table(rows: Sequence[Mapping[str, Any]], key: str, threshold: float) -> str:
    """Markdown table of :func:`sweep_rows`."""
    out = []
    for r in rows:
        per_seed = ", ".join(f"s{s}: {v}" for s, v in sorted(r["per_seed"].items())) or "none"
        out.append([r["group"], r["agent"], "none" if r["longest"] is None else str(r["longest"]),
                    r["iqm"].fmt() if "iqm" in r else "—", per_seed, str(r["values_run"])])
    return _table(out, ["task", "agent", f"longest {key} solved (IQM >= {threshold:.0%})",
                        "IQM success there [95% CI]", f"per seed: longest {key} >= {threshold:.0%}",
                        f"{key} values run"])


def render(suite: Suite, records: Sequence[Mapping[str, Any]], reps: int = 2000) -> dict[str, Any]:
    """Every table of the report as data and Markdown: ``summary``, ``aggregate``, ``improvement``,
    ``sweep`` (each ``{"rows": ..., "markdown": str}``) plus the score matrices and estimates."""
    agents = [a.name for a in suite.agents]
    tasks = [e.label for e in suite.envs]
    threshold = suite.protocol.threshold
    rows = summary_rows(records, agents, tasks)
    if suite.escalate:  # agents stop at different values: aggregate over the envs every agent ran
        ran = {(r["agent"], r["env_label"]) for r in records if r.get("status") == "ok"}
        scored = {a for a, _ in ran}
        tasks = [t for t in tasks if all((a, t) in ran for a in agents if a in scored)]
    scores = score_matrices(records, agents, tasks)
    estimates = interval_estimates(scores, reps=reps)
    agg_md = _table([[a, str(scores[a].shape[0]), est["IQM"].fmt(), est["Mean"].fmt(), est["Median"].fmt()]
                     for a, est in estimates.items()],
                    ["agent", "seeds", "IQM [95% CI]", "mean [95% CI]", "median [95% CI]"])
    poi = probability_of_improvement(scores, improvement_pairs(list(scores)), reps=reps)
    poi_md = _table([[f"{x} > {y}", iv.fmt(2)] for (x, y), iv in poi.items()], ["pair", "P(X > Y) [95% CI]"])
    out: dict[str, Any] = {
        "summary": {"rows": rows, "markdown": summary_table(rows, threshold)},
        "aggregate": {"rows": estimates, "markdown": agg_md},
        "improvement": {"rows": poi, "markdown": poi_md},
        "scores": scores,
        "aggregate_tasks": tasks,
    }
    if suite.sweep:
        srows = sweep_rows(records, suite, agents, reps)
        out["sweep"] = {"rows": srows, "markdown": sweep_table(srows, suite.sweep, threshold)}
    return out


def write_report(suite: Suite, records: Sequence[Mapping[str, Any]], out: Path, bootstrap_reps: int = 2000,
                 tables: dict[str, Any] | None = None) -> Path:
    """Write ``runs.csv``, the figures and ``report.md`` into ``out``; return the report's path.
    ``tables`` is :func:`render`'s result when the caller already has it."""
    out = Path(out)
    write_csv(records, out / "runs.csv")
    if tables is None:
        tables = render(suite, records, bootstrap_reps)
    agents = [a.name for a in suite.agents]
    tasks = [e.label for e in suite.envs]
    figures = {"learning_curves.png": "Learning curves (held-out success, one line per seed)"}
    plots.learning_curves(records, agents, tasks, suite.protocol.threshold, out / "learning_curves.png")
    estimates = tables["aggregate"]["rows"]
    if estimates:
        plots.aggregate_intervals(estimates, out / "aggregate_intervals.png")
        figures["aggregate_intervals.png"] = "Aggregate final success over seeds and envs (95 % bootstrap CIs)"
        taus, profiles, cis = performance_profiles(tables["scores"], reps=bootstrap_reps)
        plots.performance_profile(taus, profiles, cis, out / "performance_profile.png")
        figures["performance_profile.png"] = "Performance profiles (fraction of runs above each success level)"
    rates = {a: statistics.median(r["metrics"]["steps_per_second"] for r in records
                                  if r["agent"] == a and r["status"] == "ok")
             for a in agents if any(r["agent"] == a and r["status"] == "ok" for r in records)}
    if rates:
        plots.throughput(rates, out / "throughput.png")
        figures["throughput.png"] = "Training throughput"
    failed = [r for r in records if r["status"] != "ok"]
    commits = sorted({r.get("git_commit", "unknown")[:10] + ("+uncommitted" if r.get("git_dirty") else "")
                      for r in records})
    p = suite.protocol
    lines = [
        f"# tracerl bench {suite.name}", "", suite.description, "",
        f"- runs: {len(records) - len(failed)} ok, {len(failed)} failed, of {len(suite.runs())}",
        f"- commit(s) of the runs: {', '.join(commits)}",
        f"- machine: {cpu_model()}; versions: " + ", ".join(f"{k} {v}" for k, v in package_versions().items()),
        f"- seeds: {', '.join(map(str, suite.seeds))}; budget: {suite.budget:,} env steps (per-env / per-agent "
        "budgets in suite.json)",
        f"- evaluation: held-out seeds; every {p.every:,} steps on {p.episodes} episodes (deterministic), "
        f"final on {p.final_episodes} episodes ({', '.join(p.modes)}); threshold {p.threshold:.0%}"
        + ("; a periodic evaluation at the threshold counts once a second one on "
           f"{p.final_episodes} fresh episodes confirms it" if p.confirm else "")
        + ("; training stops at the threshold" if p.stop_at_threshold else ""),
        "", "## Per env and agent", "", tables["summary"]["markdown"], "",
        "Success and returns are means over seeds of the final held-out evaluation; steps/seconds to the "
        "threshold are medians over the runs that reached it; env-steps/s is training throughput "
        "(evaluation excluded).", "",
        "## Aggregate over seeds and envs (rliable)", "", tables["aggregate"]["markdown"], "",
        "Score: final held-out success rate (first evaluation mode). 95 % stratified bootstrap CIs "
        f"({bootstrap_reps} replications)."
        + (f" The suite escalates, so only the envs every agent ran count here: "
           f"{', '.join(tables['aggregate_tasks']) or 'none'}." if suite.escalate else ""), "",
        "## Probability of improvement", "", tables["improvement"]["markdown"], "",
    ]
    if "sweep" in tables:
        lines += [f"## Longest {suite.sweep} solved", "", tables["sweep"]["markdown"], ""]
        if suite.escalate:
            lines += [f"Escalation: each agent ran the {suite.sweep} values in increasing order and stopped at the "
                      "first one whose IQM success over seeds was below the threshold; its longer values were "
                      "not run.", ""]
    lines += ["## Figures", ""] + [f"![{desc}]({name})" for name, desc in figures.items()] + [""]
    if failed:
        lines += ["## Failed runs", ""] + [f"- `{r['run_id']}`: {r.get('error')}" for r in failed] + [""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
