"""Offline RL with memory: trajectory datasets (Minari's format), the recorder, Decision Transformer and BC.

* :mod:`~tracerl.offline.dataset`: :class:`Episode`, :func:`load_dataset` (checked reads), :func:`write_dataset`,
  :func:`returns_to_go`.
* :mod:`~tracerl.offline.recorder`: :func:`record` / :func:`collect_episodes` from agents, random or scripted
  policies (``tracerl record`` on the command line).
* :mod:`~tracerl.offline.experts`: scripted policies for tracerl's memory tasks.
* :mod:`~tracerl.offline.decision_transformer`: the Decision Transformer network and :class:`SequencePolicy`
  (acting with its context as explicit state, save / load without pickle).
* :mod:`~tracerl.offline.train`: offline training of DT and of behaviour cloning (:mod:`~tracerl.offline.bc`).

Needs the ``offline`` extra (``pip install 'tracerl[offline]'``: minari and h5py).
"""

from . import experts
from .dataset import Episode, TrajectoryDataset, load_dataset, returns_to_go, write_dataset
from .recorder import collect_episodes, record

__all__ = ["Episode", "TrajectoryDataset", "collect_episodes", "experts", "load_dataset", "record",
           "returns_to_go", "write_dataset"]
