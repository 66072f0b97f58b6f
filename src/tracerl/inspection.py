"""Inspection: what a memory holds, what the agent attends to, and what can be decoded from it.

``inspect(agent, env, episodes=...)`` (also ``TraceRL.inspect`` and ``tracerl inspect``) runs whole
episodes in step mode and records, for every step, the action, the reward and the memory core's trace
(:meth:`~tracerl.memory.MemoryCore.forward_with_trace`). For the strategic memory that is which episode
step each slot holds (``entry_time``), the retention scores and the attention weights; for the other
addressable cores (transformer, gtrxl, ntm, dnc, slots) their read/write/attention weights. It then

* fits a **linear probe**: a logistic regression from the memory features to a hidden variable the env
  reports in ``info`` (default ``"cue"``), trained on half the episodes and scored on the other half,
  at every step and at the last step of each episode;
* summarizes, for cores that store episode steps, how often the first step's entry is still held at the
  last step and how much attention it gets there;
* summarizes the decision points (:func:`decision_summary`): at every step the env marks as a decision
  (``info["decision"]``), whether the store holds the step that showed the cue deciding it (``info["cue_step"]``)
  and whether the read's largest attention weight is on it; envs that report neither (CueDelay, the Passive
  T-Maze) have one decision, the last step, decided by the first step's cue. :func:`decision_summary_line` says it
  in one line, e.g. "cue kept at the decision in 99 % of 128 decisions, the read's largest weight on it in 97 %";
* writes ``inspection.json`` (every recorded step) and ``inspection.png`` (entries x time for one
  episode, retention scores, attention at the last step of each episode, probe accuracy over time).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from .errors import ConfigError
from .policies.carry import ACTING, Carry


@dataclass
class ProbeResult:
    """Held-out accuracy of a linear probe from memory features to ``info[key]`` (chance: the majority class)."""

    key: str
    accuracy_all_steps: float
    accuracy_last_step: float
    chance: float
    accuracy_by_step: list[float] = field(default_factory=list)


@dataclass
class InspectionReport:
    """What :func:`inspect` found. ``episodes[i]["steps"][t]`` holds ``action``, ``reward`` and the trace
    entries (lists) of step ``t``; ``summary`` the aggregate figures; ``files`` the paths written."""

    episodes: list[dict[str, Any]]
    summary: dict[str, float]
    probe: ProbeResult | None
    files: dict[str, str]

    @property
    def summary_line(self) -> str:
        """One line on what the memory held at the decision points (:func:`decision_summary_line`)."""
        return decision_summary_line(self.summary)

    def to_json(self) -> dict[str, Any]:
        return {"summary": self.summary, "summary_line": self.summary_line,
                "probe": None if self.probe is None else self.probe.__dict__, "files": self.files,
                "episodes": self.episodes}


def _to_list(x: Tensor) -> Any:
    return x.detach().cpu().tolist()


@torch.no_grad()
def _run_episodes(agent: Any, env: Any, episodes: int, seed: int, deterministic: bool, env_kwargs: dict[str, Any] | None,
                  info_key: str, import_modules: tuple[str, ...] = ()
                  ) -> tuple[list[dict[str, Any]], list[np.ndarray], list[float | None]]:
    from .envs import make_vec_env
    from .envs.vector import check_env_spaces

    learner = agent.learner  # the acting network of any algorithm (tracerl.algos.learner.Learner.act)
    allowed = import_modules + tuple(getattr(agent, "import_modules", ()) or ())
    vec = make_vec_env(env, n_envs=min(16, episodes), seed=seed, env_kwargs=env_kwargs, import_modules=allowed)
    check_env_spaces(vec, agent.observation_space, agent.action_space, what="the agent (inspect)")
    n = vec.num_envs
    targets = np.array([(episodes + i) // n for i in range(n)])
    counts = np.zeros(n, dtype=int)
    device = agent.device
    obs, infos = vec.reset(seed=seed)
    carry = Carry.initial({ACTING: learner}, n, learner.action_shape, learner.action_dtype, device)
    running: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    running_feats: list[list[np.ndarray]] = [[] for _ in range(n)]
    label = _labels(infos, info_key, n)
    current = list(label)  # the label the env reports now (it may change within an episode: RewriteMaze's cue)
    running_labels: list[list[float | None]] = [[] for _ in range(n)]
    marks = _decision_marks(infos, n)  # what the env says about the observations just returned
    done_eps: list[dict[str, Any]] = []
    feats: list[np.ndarray] = []
    labels: list[float | np.ndarray | None] = []
    agent.policy.eval()
    while (counts < targets).any():
        x = learner.preprocess(obs, device)
        out = learner.act(x[None], carry, deterministic, trace=True)
        action = out.action
        obs, reward, term, trunc, infos = vec.step(out.env_action)
        done = np.asarray(term) | np.asarray(trunc)
        for i in range(n):
            if counts[i] >= targets[i]:
                continue
            step = {"action": _to_list(action[i]), "reward": float(reward[i]), **marks[i]}
            for k, v in out.trace.items():
                step[k] = _to_list(v[0, i])
            running[i].append(step)
            running_feats[i].append(out.features[0, i].cpu().numpy())
            running_labels[i].append(current[i])
            if done[i]:
                done_eps.append({"episode": len(done_eps), "env": i, "label": label[i], "steps": running[i],
                                 "return": float(sum(s["reward"] for s in running[i]))})
                feats.append(np.stack(running_feats[i]))
                per_step = running_labels[i]
                changes = None not in per_step and len(set(per_step)) > 1
                labels.append(np.asarray(per_step, dtype=np.float64) if changes else label[i])
                running[i], running_feats[i], running_labels[i] = [], [], []
                counts[i] += 1
        new_label = _labels(infos, info_key, n)
        label = [new_label[i] if done[i] or label[i] is None else label[i] for i in range(n)]
        current = [new_label[i] if new_label[i] is not None else (None if done[i] else current[i]) for i in range(n)]
        marks = _decision_marks(infos, n)
        carry = carry.advance({ACTING: out.state}, action, torch.as_tensor(np.asarray(reward, dtype=np.float32)),
                              torch.as_tensor(done))
    vec.close()
    return done_eps, feats, labels


def _labels(infos: dict[str, Any], key: str, n: int) -> list[float | None]:
    if key not in infos:
        return [None] * n
    values = np.asarray(infos[key], dtype=np.float64)
    present = np.asarray(infos.get(f"_{key}", np.ones(n, dtype=bool)), dtype=bool)
    return [float(values[i]) if present[i] else None for i in range(n)]


DECISION_KEYS = ("decision", "cue_step")
"""Per-step info keys an env may report about the observation it returns: ``decision`` (bool, a decision point)
and ``cue_step`` (int, the episode step whose observation showed the cue that decides it)."""


def _decision_marks(infos: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """Per env, the :data:`DECISION_KEYS` the vector infos report for it (empty dicts when the env reports none)."""
    marks: list[dict[str, Any]] = [{} for _ in range(n)]
    for key in DECISION_KEYS:
        if key not in infos:
            continue
        values = np.asarray(infos[key])
        present = np.asarray(infos.get(f"_{key}", np.ones(n, dtype=bool)), dtype=bool)
        for i in np.flatnonzero(present):
            marks[i][key] = bool(values[i]) if key == "decision" else int(values[i])
    return marks


def _decisions(episode: dict[str, Any]) -> list[tuple[int, int]]:
    """``(step index, cue step)`` of an episode's decision points: the steps marked ``decision`` by the env (their
    ``cue_step``, else 0), or, when the env marks none, the last step, decided by the first step's cue."""
    steps = episode["steps"]
    if any("decision" in s for s in steps):
        return [(t, int(s.get("cue_step", 0))) for t, s in enumerate(steps) if s.get("decision")]
    return [(len(steps) - 1, 0)] if steps else []


def decision_summary(episodes: list[dict[str, Any]]) -> dict[str, float]:
    """What a store held at the decision points (cores whose trace has ``entry_time`` and ``attention``; empty for
    others): over every decision point of every episode (see :func:`_decisions`),

    * ``decisions``: how many there were;
    * ``cue_held_at_decision``: the fraction at which a slot held the cue step (the read sees it);
    * ``cue_top_attention_at_decision``: the fraction at which the cue's entry drew the largest attention weight of
      all entries and the current step (the read used it);
    * ``attention_on_cue_at_decision``: the mean attention weight on the cue's entry (0 where it was not held).
    """
    held: list[float] = []
    top: list[float] = []
    weight: list[float] = []
    for episode in episodes:
        steps = episode["steps"]
        for t, cue_step in _decisions(episode):
            step = steps[t]
            if "entry_time" not in step or "attention" not in step:
                return {}
            slots = [j for j, tau in enumerate(step["entry_time"]) if tau == cue_step]
            attention = np.asarray(step["attention"], dtype=float)
            held.append(1.0 if slots else 0.0)
            top.append(1.0 if slots and int(np.argmax(attention)) == slots[0] else 0.0)
            weight.append(float(attention[slots[0]]) if slots else 0.0)
    if not held:
        return {}
    return {"decisions": float(len(held)), "cue_held_at_decision": float(np.mean(held)),
            "cue_top_attention_at_decision": float(np.mean(top)), "attention_on_cue_at_decision": float(np.mean(weight))}


def decision_summary_line(summary: dict[str, float]) -> str:
    """One line from an inspection summary, e.g. "cue kept at the decision in 99 % of 128 decisions, the read's
    largest weight on it in 97 % (mean weight 0.41); mean return 0.98". Cores without a store get the probe's
    accuracy at the last step instead, when there is one."""
    parts = []
    if "cue_held_at_decision" in summary:
        parts.append(f"cue kept at the decision in {100 * summary['cue_held_at_decision']:.0f} % of "
                     f"{summary['decisions']:.0f} decisions, the read's largest weight on it in "
                     f"{100 * summary['cue_top_attention_at_decision']:.0f} % "
                     f"(mean weight {summary['attention_on_cue_at_decision']:.2f})")
    elif "probe_accuracy_last_step" in summary:
        parts.append(f"no store to inspect; a linear probe reads the cue from the memory at the last step with "
                     f"{100 * summary['probe_accuracy_last_step']:.0f} % accuracy (chance "
                     f"{100 * summary['probe_chance']:.0f} %)")
    else:
        parts.append("no store to inspect")
    if "mean_return" in summary:
        parts.append(f"mean return {summary['mean_return']:.2f} over {summary.get('episodes', 0):.0f} episodes")
    return "; ".join(parts)


def linear_probe(feats: list[np.ndarray], labels: list[float | np.ndarray | None], key: str,
                 seed: int = 0) -> ProbeResult | None:
    """Logistic regression (L2, full-batch LBFGS) from per-step features to the episode's label (a number for the
    whole episode, or an array ``[T]`` of per-step labels when the hidden variable changes within the episode); fit
    on the even-numbered episodes, scored on the odd ones. None when fewer than 4 labelled episodes or one class."""
    pairs = [(f, np.full(len(f), lab, dtype=np.float64) if np.ndim(lab) == 0 else np.asarray(lab, dtype=np.float64))
             for f, lab in zip(feats, labels) if lab is not None]
    if len(pairs) < 4:
        return None
    classes = sorted({float(v) for _, lab in pairs for v in lab})
    if len(classes) < 2:
        return None
    index = {c: i for i, c in enumerate(classes)}
    train = pairs[0::2]
    test = pairs[1::2]

    def stack(part: list[tuple[np.ndarray, np.ndarray]]) -> tuple[Tensor, Tensor, Tensor]:
        x = torch.as_tensor(np.concatenate([f for f, _ in part]), dtype=torch.float32)
        y = torch.as_tensor(np.concatenate([[index[float(v)] for v in lab] for _, lab in part]), dtype=torch.long)
        t = torch.as_tensor(np.concatenate([np.arange(len(f)) for f, _ in part]), dtype=torch.long)
        return x, y, t

    x_tr, y_tr, _ = stack(train)
    x_te, y_te, t_te = stack(test)
    mean, std = x_tr.mean(0), x_tr.std(0) + 1e-6
    x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
    torch.manual_seed(seed)
    lin = torch.nn.Linear(x_tr.shape[1], len(classes))
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(lin(x_tr), y_tr) + 1e-3 * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        correct = (lin(x_te).argmax(-1) == y_te).float()
    last = torch.as_tensor(np.cumsum([len(f) for f, _ in test]) - 1)
    by_step = [float(correct[t_te == t].mean()) for t in range(int(t_te.max()) + 1) if bool((t_te == t).any())]
    counts = np.bincount(y_te.numpy(), minlength=len(classes))
    return ProbeResult(key=key, accuracy_all_steps=float(correct.mean()), accuracy_last_step=float(correct[last].mean()),
                       chance=float(counts.max() / counts.sum()), accuracy_by_step=by_step)


def _summary(episodes: list[dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {"episodes": float(len(episodes)),
                             "mean_return": float(np.mean([e["return"] for e in episodes]))}
    last_steps = [e["steps"][-1] for e in episodes if e["steps"]]
    if last_steps and "entry_time" in last_steps[0]:
        held, att = [], []
        for s in last_steps:
            times = s["entry_time"]
            hit = [j for j, tau in enumerate(times) if tau == 0]
            held.append(1.0 if hit else 0.0)
            att.append(float(s["attention"][hit[0]]) if hit else 0.0)
        out["first_step_held_at_last_step"] = float(np.mean(held))
        out["attention_on_first_step_at_last_step"] = float(np.mean(att))
        kept = [a for a, h in zip(att, held) if h]
        if kept:
            out["attention_on_first_step_when_held"] = float(np.mean(kept))
    out.update(decision_summary(episodes))
    return out


def _plot(episodes: list[dict[str, Any]], probe: ProbeResult | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = episodes[0]
    steps = ep["steps"]
    has_store = "entry_time" in steps[0]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    if has_store:
        held = np.array([s["entry_time"] for s in steps], dtype=float).T  # [M, T]
        ax = axes[0, 0]
        im = ax.imshow(np.where(held < 0, np.nan, held), aspect="auto", cmap="viridis", interpolation="nearest")
        ax.set(title="episode 0: episode step held by each slot", xlabel="episode step", ylabel="slot")
        fig.colorbar(im, ax=ax, label="held step")
        ret = np.array([s["retention"] for s in steps], dtype=float).T
        ret[held < 0] = np.nan
        ax = axes[0, 1]
        im = ax.imshow(ret, aspect="auto", cmap="magma", interpolation="nearest")
        ax.set(title="episode 0: retention score of each slot", xlabel="episode step", ylabel="slot")
        fig.colorbar(im, ax=ax, label="retention logit")
        # Attention at the last step of every episode, by the age of what it attends to.
        ax = axes[1, 0]
        for e in episodes[:20]:
            last = e["steps"][-1]
            t_last = len(e["steps"]) - 1
            times = [tau for tau in last["entry_time"]] + [t_last]
            weights = last["attention"]
            pts = sorted((tau, w) for tau, w in zip(times, weights) if tau >= 0)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", alpha=0.4, markersize=3)
        ax.set(title="attention at the last step (20 episodes)", xlabel="episode step of the attended entry",
               ylabel="attention weight")
    else:
        keys = [k for k, v in steps[0].items() if isinstance(v, list) and k != "action"]
        for ax, key in zip((axes[0, 0], axes[0, 1], axes[1, 0]), keys[:3]):
            arr = np.array([np.ravel(s[key]) for s in steps], dtype=float).T
            im = ax.imshow(arr, aspect="auto", interpolation="nearest")
            ax.set(title=f"episode 0: {key}", xlabel="episode step", ylabel="index")
            fig.colorbar(im, ax=ax)
    ax = axes[1, 1]
    if probe is not None:
        ax.plot(probe.accuracy_by_step, label=f"probe accuracy ({probe.key})")
        ax.axhline(probe.chance, color="grey", linestyle="--", label="chance")
        ax.set(ylim=(0, 1.05), title=f"linear probe of info['{probe.key}'] from memory features",
               xlabel="episode step", ylabel="held-out accuracy")
        ax.legend()
    else:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def inspect(
    agent: Any,
    env: Any,
    episodes: int = 20,
    out: str | os.PathLike[str] | None = None,
    seed: int = 20_000,
    deterministic: bool = True,
    env_kwargs: dict[str, Any] | None = None,
    info_key: str = "cue",
    import_modules: Sequence[str] = (),
) -> InspectionReport:
    """Record ``episodes`` episodes of ``agent`` on ``env`` and report what its memory held (see the module).

    Args:
        agent: a :class:`~tracerl.TraceRL`.
        env: an env id, Env, VectorEnv or callable (as for :func:`~tracerl.evaluation.evaluate`).
        episodes: number of whole episodes (>= 1; the probe needs >= 4 with labels).
        out: folder for ``inspection.json`` and ``inspection.png`` (None: write nothing).
        seed: env seed (held-out episodes).
        deterministic: act by the distribution's mode.
        env_kwargs: keyword arguments when ``env`` is an id.
        info_key: the hidden variable in ``info`` to probe for.
        import_modules: modules an env id read from a file may import (see :mod:`tracerl.envs.safe_make`).
    """
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ConfigError(f"episodes={episodes!r} is invalid: must be an int >= 1")
    eps, feats, labels = _run_episodes(agent, env, episodes, seed, deterministic, env_kwargs, info_key,
                                       tuple(import_modules))
    probe = linear_probe(feats, labels, info_key)
    summary = _summary(eps)
    if probe is not None:
        summary["probe_accuracy_last_step"] = probe.accuracy_last_step
        summary["probe_chance"] = probe.chance
    files: dict[str, str] = {}
    report = InspectionReport(eps, summary, probe, files)
    if out is not None:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        png = folder / "inspection.png"
        _plot(eps, probe, png)
        files["png"] = str(png)
        js = folder / "inspection.json"
        files["json"] = str(js)
        tmp = js.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(report.to_json(), allow_nan=True))
        os.replace(tmp, js)
    return report


__all__ = ["InspectionReport", "ProbeResult", "decision_summary", "decision_summary_line", "inspect", "linear_probe"]
