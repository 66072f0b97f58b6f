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
    "steps_per_second", "steps_to_threshold", "seconds_to_threshold", "comparison", "time_budget", "stopped_by",
    "success_deterministic",
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
                           "git_commit": record.get("git_commit", ""), "error": record.get("error", ""),
                           "comparison": record_comparison(record), "time_budget": record.get("time_budget")}
    m = record.get("metrics")
    if m:
        row.update({k: m[k] for k in ("train_steps", "train_seconds", "wall_seconds", "steps_per_second",
                                      "steps_to_threshold", "seconds_to_threshold")})
        row["stopped_by"] = m.get("stopped_by", "budget")
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
    """Per env and agent: runs finished, mean final success and return (each mode), mean and std of the return
    (the protocol's first mode, which scores the run),
    runs that reached the threshold, median steps / training seconds to it, median train steps and seconds,
    median env-steps/s, and how many runs stopped by what (budget, time, threshold)."""
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
                    row[f"return_{mode}"] = float(np.mean([f[mode]["mean_return"] for f in finals]))
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
                row["train_seconds"] = _median([r["metrics"]["train_seconds"] for r in ok])
                row["wall_seconds"] = float(sum(r["metrics"]["wall_seconds"] for r in ok))
                stops: dict[str, int] = {}
                for r in ok:
                    why = r["metrics"].get("stopped_by", "budget")
                    stops[why] = stops.get(why, 0) + 1
                row["stopped_by"] = stops
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
            _fmt(r.get("return_stochastic"), ".3f"),
            f"{r.get('solved', 0)}/{r['ok']}", _fmt(r.get("steps_to_threshold"), ",.0f"),
            _fmt(r.get("seconds_to_threshold"), ".1f"), _fmt(r.get("train_steps"), ",.0f"),
            _fmt(r.get("train_seconds"), ".1f"), _fmt(r.get("steps_per_second"), ",.0f"),
            ", ".join(f"{k} {v}" for k, v in sorted(r.get("stopped_by", {}).items())) or "—",
            _fmt(r.get("wall_seconds"), ".1f"),
        ])
    pct = f"{threshold:.0%}"
    return _table(out, ["env", "agent", "runs ok", "success (det)", "success (stoch)", "mean return",
                        "std return", "return (stoch)", f"reached {pct}", f"steps to {pct}", f"train s to {pct}",
                        "train steps",
                        "train s", "env-steps/s", "stopped by", "wall s (sum)"])


RATE_BASELINE = "sb3-recurrentppo"
"""The agent every training rate is also compared to in :func:`env_rate_rows` (when it ran on the env)."""


def env_rate_rows(records: Sequence[Mapping[str, Any]], agents: Sequence[str], tasks: Sequence[str]
                  ) -> list[dict[str, Any]]:
    """Per env and agent whose runs measured their env's own stepping rate (``metrics.env_rate``): the median
    training env-steps/s, the median random-action env-steps/s of the same vector env class and number of sub-envs
    (measured in the same runs), their ratio, and the ratio of the training rate to :data:`RATE_BASELINE`'s on the
    same env (None when it did not run there)."""
    rows = []
    for task in tasks:
        ok = [r for r in records if r["env_label"] == task and r["status"] == "ok"]
        train = {a: _median([r["metrics"]["steps_per_second"] for r in ok if r["agent"] == a]) for a in agents}
        base = train.get(RATE_BASELINE)
        for agent in agents:
            measured = [r["metrics"]["env_rate"] for r in ok if r["agent"] == agent and r["metrics"].get("env_rate")]
            if not measured:
                continue
            env_sps = _median([m["steps_per_second"] for m in measured])
            rate = train[agent]
            rows.append({"env": task, "agent": agent, "vector_env": f"{measured[0]['vector_env']} x {measured[0]['n_envs']}",
                         "train_sps": rate, "env_sps": env_sps,
                         "fraction_of_env": None if rate is None or not env_sps else rate / env_sps,
                         "vs_baseline": None if rate is None or not base else rate / base})
    return rows


def env_rate_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Markdown table of :func:`env_rate_rows`."""
    return _table([[r["env"], r["agent"], r["vector_env"], _fmt(r["train_sps"], ",.0f"), _fmt(r["env_sps"], ",.0f"),
                    _fmt(None if r["fraction_of_env"] is None else 100 * r["fraction_of_env"], ".1f") + (
                        " %" if r["fraction_of_env"] is not None else ""),
                    _fmt(r["vs_baseline"], ".1f") + ("x" if r["vs_baseline"] is not None else "")] for r in rows],
                  ["env", "agent", "vector env", "training env-steps/s", "env alone, random actions (env-steps/s)",
                   "training / env alone", f"training / {RATE_BASELINE}"])


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
                scores = {int(r["seed"]): run_score(r, "success") for r in records
                          if r["agent"] == agent and r["env_label"] == env.label
                          and run_score(r, "success") is not None}
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


COMPARISON_TITLES = {"steps": "Equal env steps", "time": "Equal training time"}
SCORE_NAMES = {"success": "success", "return": "return"}


def time_unit(suite: Any) -> str:
    """``"s"`` for wall-clock equal-time runs, ``"CPU-s"`` when they count the run's CPU time."""
    return "CPU-s" if getattr(suite, "time_clock", "wall") == "cpu" else "s"


def record_comparison(record: Mapping[str, Any]) -> str:
    """``"time"`` for a run with a training-time budget, else ``"steps"``."""
    return record.get("comparison") or ("steps" if record.get("time_budget") is None else "time")


def _score_of(suite: Suite, label: str) -> str:
    return next((e.score for e in suite.envs if e.label == label), "success")


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values))


def _seconds_phrase(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds:.1f}" if seconds < 10 else f"{seconds:.0f}"


def _steps_phrase(steps: float | None) -> str:
    return "—" if steps is None else f"{steps:,.0f}"


def _agent_phrase(agent: str, group: Sequence[Mapping[str, Any]], score: str, comparison: str,
                  threshold: float) -> tuple[float, str]:
    """``(mean score, "agent reached ...")`` over the finished runs ``group`` of one agent on one env."""
    ok = [r for r in group if r.get("status") == "ok"]
    values = [run_score(r, score) for r in ok]
    mean = _mean(values)
    m = [r["metrics"] for r in ok]
    steps = _median([x["train_steps"] for x in m])
    seconds = _median([x["train_seconds"] for x in m])
    solved = [x for x in m if x.get("steps_to_threshold") is not None]
    text = f"{agent} {SCORE_NAMES[score]} {mean:.2f}"
    if solved:
        text += (f" ({len(solved)}/{len(ok)} seeds reached {threshold:.0%} success, median "
                 f"{_seconds_phrase(_median([x['seconds_to_threshold'] for x in solved]))} s and "
                 f"{_steps_phrase(_median([x['steps_to_threshold'] for x in solved]))} env steps)")
    elif comparison == "time":
        text += f" after {_steps_phrase(steps)} env steps"
    else:
        text += f" in {_seconds_phrase(seconds)} s of training"
    if len(ok) < len(group):
        text += f" [{len(group) - len(ok)} failed]"
    return mean, text


def headline(suite: Suite, records: Sequence[Mapping[str, Any]], tables: Mapping[str, Any] | None = None
             ) -> list[str]:
    """The report's opening: one sentence per comparison and env (per comparison and score, aggregated,
    when the suite has more than 3 envs) saying who reached what within the budget, best first."""
    agents = [a.name for a in suite.agents]
    threshold = suite.protocol.threshold
    out = []
    for comparison in suite.comparisons:
        recs = [r for r in records if record_comparison(r) == comparison]
        if not recs:
            out.append(f"{COMPARISON_TITLES[comparison]}: no finished runs yet.")
            continue
        if len(suite.envs) > 3 and tables is not None:
            for group in tables["comparisons"][comparison]["groups"]:
                est, poi = group["aggregate"]["rows"], group["improvement"]["rows"]
                if not est:
                    continue
                ranked = sorted(est, key=lambda a: -est[a]["IQM"].point)
                budget = (f"{suite.time_budget:g} {time_unit(suite)} of training each" if comparison == "time"
                          else f"{suite.budget:,} env steps each")
                text = (f"At {budget} over {len(group['tasks'])} envs, IQM {SCORE_NAMES[group['score']]} over "
                        "seeds and envs: " + ", ".join(f"{a} {est[a]['IQM'].fmt(2)}" for a in ranked))
                if poi:
                    text += "; " + ", ".join(f"P({x} > {y}) = {iv.point:.2f}" for (x, y), iv in poi.items())
                out.append(text + ".")
            continue
        for env in suite.envs:
            by_agent = {a: [r for r in recs if r["agent"] == a and r["env_label"] == env.label] for a in agents}
            phrases = [_agent_phrase(a, g, env.score, comparison, threshold) for a, g in by_agent.items()
                       if any(r.get("status") == "ok" for r in g)]
            if not phrases:
                continue
            phrases.sort(key=lambda p: -p[0])
            if comparison == "time":
                lead = f"Within {suite.time_budget:g} {time_unit(suite)} of training each on {env.label}: "
            else:
                budgets = sorted({int(r["budget"]) for g in by_agent.values() for r in g})
                lead = (f"At {budgets[0]:,} env steps each on {env.label}: " if len(budgets) == 1
                        else f"At equal env-step budgets on {env.label}: ")
            out.append(lead + ", ".join(p[1] for p in phrases) + ".")
    return out


def _comparison_tables(suite: Suite, records: Sequence[Mapping[str, Any]], agents: Sequence[str],
                       reps: int) -> dict[str, Any]:
    """Summary, then per score kind (success / return) the aggregate and probability of improvement."""
    tasks = [e.label for e in suite.envs]
    rows = summary_rows(records, agents, tasks)
    if suite.escalate:  # agents stop at different values: aggregate over the envs every agent ran
        ran = {(r["agent"], r["env_label"]) for r in records if r.get("status") == "ok"}
        scored = {a for a, _ in ran}
        tasks = [t for t in tasks if all((a, t) in ran for a in agents if a in scored)]
    groups = []
    for score in ("success", "return"):
        group_tasks = [t for t in tasks if _score_of(suite, t) == score]
        if not group_tasks:
            continue
        scores = score_matrices(records, agents, group_tasks)
        estimates = interval_estimates(scores, reps=reps)
        agg_md = _table([[a, str(scores[a].shape[0]), est["IQM"].fmt(), est["Mean"].fmt(), est["Median"].fmt()]
                         for a, est in estimates.items()],
                        ["agent", "seeds", "IQM [95% CI]", "mean [95% CI]", "median [95% CI]"])
        poi = probability_of_improvement(scores, improvement_pairs(list(scores)), reps=reps)
        poi_md = _table([[f"{x} > {y}", iv.fmt(2)] for (x, y), iv in poi.items()], ["pair", "P(X > Y) [95% CI]"])
        groups.append({"score": score, "tasks": group_tasks, "scores": scores,
                       "aggregate": {"rows": estimates, "markdown": agg_md},
                       "improvement": {"rows": poi, "markdown": poi_md}})
    return {"summary": {"rows": rows, "markdown": summary_table(rows, suite.protocol.threshold)}, "groups": groups,
            "aggregate_tasks": tasks}


def render(suite: Suite, records: Sequence[Mapping[str, Any]], reps: int = 2000) -> dict[str, Any]:
    """Every table of the report as data and Markdown.

    ``comparisons``: per comparison of the suite (``steps``, ``time``), ``summary`` and ``groups`` (per
    score kind: ``aggregate``, ``improvement``, ``scores``, ``tasks``); ``headline``: the opening sentences.
    For convenience the first comparison's ``summary``, and its first group's ``aggregate``, ``improvement``
    and ``scores``, are also at the top level, with ``sweep`` when the suite has one and ``env_rate`` when its runs
    measured their env's own stepping rate (:func:`env_rate_rows`; each table ``{"rows": ..., "markdown": str}``)."""
    agents = [a.name for a in suite.agents]
    comparisons = {c: _comparison_tables(suite, [r for r in records if record_comparison(r) == c], agents, reps)
                   for c in suite.comparisons}
    first = comparisons[suite.comparisons[0]]
    group = first["groups"][0] if first["groups"] else {"aggregate": {"rows": {}, "markdown": ""},
                                                         "improvement": {"rows": {}, "markdown": ""}, "scores": {}}
    out: dict[str, Any] = {
        "comparisons": comparisons,
        "summary": first["summary"],
        "aggregate": group["aggregate"],
        "improvement": group["improvement"],
        "scores": group["scores"],
        "aggregate_tasks": first["aggregate_tasks"],
    }
    out["headline"] = headline(suite, records, out)
    first_records = [r for r in records if record_comparison(r) == suite.comparisons[0]]
    rate_rows = env_rate_rows(first_records, agents, [e.label for e in suite.envs])
    if rate_rows:
        out["env_rate"] = {"rows": rate_rows, "markdown": env_rate_table(rate_rows)}
    if suite.sweep:
        srows = sweep_rows(records, suite, agents, reps)
        out["sweep"] = {"rows": srows, "markdown": sweep_table(srows, suite.sweep, suite.protocol.threshold)}
    return out


def _score_range(score: str) -> tuple[float, float]:
    return (-1.0, 1.0) if score == "return" else (0.0, 1.0)


def write_report(suite: Suite, records: Sequence[Mapping[str, Any]], out: Path, bootstrap_reps: int = 2000,
                 tables: dict[str, Any] | None = None) -> Path:
    """Write ``runs.csv``, the figures and ``report.md`` into ``out``; return the report's path.
    ``tables`` is :func:`render`'s result when the caller already has it."""
    out = Path(out)
    write_csv(records, out / "runs.csv")
    if tables is None:
        tables = render(suite, records, bootstrap_reps)
    agents = [a.name for a in suite.agents]
    panels = [(c, e) for c in suite.comparisons for e in suite.envs]
    two = len(suite.comparisons) > 1
    figures = {"learning_curves.png": "Learning curves against env steps (held-out score, one line per seed)",
               "learning_curves_time.png": "Learning curves against training seconds (evaluation excluded; wall-clock, "
                                           "or CPU-s for equal-time runs on the CPU clock)"}
    for name, x in (("learning_curves.png", "steps"), ("learning_curves_time.png", "train_seconds")):
        plots.learning_curves(records, agents, [(f"{e.label}" + (f" [{COMPARISON_TITLES[c].lower()}]" if two else ""),
                                                  e.label, c, e.score) for c, e in panels],
                              suite.protocol.threshold, out / name, x=x)
    multi = sum(len(t["groups"]) for t in tables["comparisons"].values()) > 1
    for c, t in tables["comparisons"].items():
        for group in t["groups"]:
            estimates = group["aggregate"]["rows"]
            if not estimates:
                continue
            suffix = f"_{c}_{group['score']}" if multi else ""
            what = f"final {SCORE_NAMES[group['score']]}" + (f", {COMPARISON_TITLES[c].lower()}" if two else "")
            lo, hi = _score_range(group["score"])
            plots.aggregate_intervals(estimates, out / f"aggregate_intervals{suffix}.png", lim=(lo, hi),
                                      xlabel=f"final {SCORE_NAMES[group['score']]}")
            figures[f"aggregate_intervals{suffix}.png"] = f"Aggregate {what} over seeds and envs (95 % bootstrap CIs)"
            taus, profiles, cis = performance_profiles(group["scores"], taus=np.linspace(lo, hi, 51),
                                                       reps=bootstrap_reps)
            plots.performance_profile(taus, profiles, cis, out / f"performance_profile{suffix}.png",
                                      xlabel=f"final {SCORE_NAMES[group['score']]} tau")
            figures[f"performance_profile{suffix}.png"] = f"Performance profiles ({what}: fraction of runs above tau)"
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
    budgets = []
    if suite.compare_steps:
        budgets.append(f"{suite.budget:,} env steps per run (per-env / per-agent budgets in suite.json)")
    if suite.time_budget is not None:
        budgets.append(f"{suite.time_budget:g} {time_unit(suite)} of training per run (evaluation excluded; an agent is "
                       "stopped at the "
                       "first moment its library allows after that: SB3 at the next vector step or optimizer step, "
                       "tracerl at the end of the update in progress; the steps it reached are recorded; capped "
                       f"at {suite.time_step_cap:,} steps)")
    every = " and ".join(x for x in (f"every {p.every:,} steps" if p.every else "",
                                     f"every {p.every_seconds:g} s of training" if p.every_seconds else "") if x)
    scored = sorted({e.score for e in suite.envs})
    lines = [f"# tracerl bench {suite.name}", ""] + [x for s in tables["headline"] for x in (f"**{s}**", "")] + [
        suite.description, "",
        f"- runs: {len(records) - len(failed)} ok, {len(failed)} failed, of {len(suite.runs())}",
        f"- commit(s) of the runs: {', '.join(commits)}",
        f"- machine: {cpu_model()}; versions: " + ", ".join(f"{k} {v}" for k, v in package_versions().items()),
        f"- seeds: {', '.join(map(str, suite.seeds))}; budget: " + "; and ".join(budgets),
        f"- evaluation: held-out seeds; {every or 'no periodic evaluation'} on {p.episodes} episodes "
        f"(deterministic; equal-step runs evaluate by steps, equal-time runs by time when both are set), final on "
        f"{p.final_episodes} episodes ({', '.join(p.modes)}); threshold {p.threshold:.0%} success"
        + ("; a periodic evaluation at the threshold counts once a second one on "
           f"{p.final_episodes} fresh episodes confirms it" if p.confirm else "")
        + ("; training stops at the threshold" if p.stop_at_threshold else ""),
        "- score: " + "; ".join({"success": "final held-out success rate (in [0, 1])",
                                 "return": "final held-out mean episode return (POPGym's lie in [-1, 1])"}[s]
                                for s in scored) + " (first evaluation mode)",
        "",
    ]
    if suite.time_budget is not None and suite.time_clock == "cpu":
        lines += ["Equal-time runs count training seconds as the CPU time of each run's own process (CPU-s; every run "
                  "is single-threaded, so on a free core CPU-s and wall-clock seconds agree): on a machine shared with "
                  "other jobs each agent still gets the compute it would have had alone. The other times are "
                  "wall-clock.", ""]
    elif suite.time_budget is not None:
        lines += ["Training times are wall-clock on the machine named above; on a loaded machine every agent reaches "
                  "fewer steps within the same time.", ""]
    for c, t in tables["comparisons"].items():
        h = "###" if two else "##"
        if two:
            lines += [f"## {COMPARISON_TITLES[c]}", ""]
        lines += [f"{h} Per env and agent", "", t["summary"]["markdown"], "",
                  "Success and returns are means over seeds of the final held-out evaluation; train steps and "
                  "seconds are medians (for equal-time runs: the steps reached within the time); steps/seconds to "
                  "the threshold are medians over the runs that reached it; env-steps/s is training throughput "
                  "(evaluation excluded).", ""]
        for group in t["groups"]:
            lines += [f"{h} Aggregate {SCORE_NAMES[group['score']]} over seeds and envs (rliable)",
                      "", group["aggregate"]["markdown"], "",
                      f"Envs: {', '.join(group['tasks'])}. 95 % stratified bootstrap CIs ({bootstrap_reps} "
                      "replications)."
                      + (" The suite escalates, so only the envs every agent ran count here." if suite.escalate
                         else ""), "",
                      f"{h} Probability of improvement ({SCORE_NAMES[group['score']]})", "",
                      group["improvement"]["markdown"], ""]
    if "env_rate" in tables:
        lines += ["## Training throughput against the env's own stepping rate", "", tables["env_rate"]["markdown"], "",
                  "Env alone: the same vector env class with the same number of sub-envs as the agent's (for tracerl "
                  "on a third-party env, gymnasium's plain Sync/AsyncVectorEnv without tracerl's checks), stepped with "
                  f"random actions for {suite.env_rate_steps:,} env steps right before and right after training in "
                  "the same process (the mean of the two); medians over seeds. Both rates share the machine's load "
                  "at the time, so their ratio is comparable across machines more than either figure.", ""]
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
