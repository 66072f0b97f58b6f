"""Strategic episodic memory: a bounded store of past steps, learned retention, soft-attention recall.

The memory of seed 001 (``StrategicMemoryBuffer``), under the memory contract. Each step ``t`` of an
episode arrives as a raw input ``x_t`` (for :class:`StrategicMemoryBuffer`: the observation, the
previous action and the previous reward) at episode time ``τ_t`` (steps since the episode started)::

    e_t  = MLP_w([x_t; φ(τ_t)])                                    write embedding, mem_dim wide
    φ(τ) = [log(1+τ)/8, sin(k·log(1+τ)), cos(k·log(1+τ))]_{k=1,2,4}  time features

Recall: the current step attends over the entries ``S_t`` of the store (at most ``M = max_entries``,
all from the current episode) and itself, with ``H`` heads of width ``d = mem_dim / H``::

    ℓ_hj = (W_q^h e_t)·(W_k^h e_j) / sqrt(d) - λ_h · log(1 + τ_t - τ_j)      j ∈ S_t ∪ {t}
    a_h  = softmax_j ℓ_hj,   r_t = W_o [Σ_j a_hj W_v^h e_j]_{h=1..H}
    y_t  = [e_t; r_t]                                               output, 2·mem_dim wide

Entries are stored raw (``x_j`` and ``τ_j``) and embedded again with the current parameters at every
read, so a training pass that replays the same store sends gradients into the write embedding of every
entry that was read, however long ago it was written.

Retention: after the read, step ``t`` is written. While the store has a free slot it takes it; when it
is full, the candidate with the lowest priority among the ``M`` entries and the new step is dropped
(if that is the new step, nothing is written)::

    π_j = (1 - ε) · σ(ρ(e_j)) + ε · u_j

``ρ`` is the retention scorer (an MLP on the write embedding), ``u_j`` a keep value drawn when ``j`` is
written (``retention_explore_mode``: ``U(0, 1)`` for "reservoir", along a random direction per episode for
"direction", surprise-weighted reservoir keys for "novelty"; see ``_keep_values``), and ``ε`` the exploration
weight: ``ε = 1`` with "reservoir" is reservoir sampling (the store holds a uniform random subset of the
episode), ``ε = 0`` trusts the scorer. ``set_training_progress``
anneals ``ε`` from 1 to ``retention_explore_end`` over the first ``retention_explore_fraction`` of
training when retention is learned, and keeps it at 1 (reservoir) when it is not.

Learned retention (``learn_retention=True``) trains ``ρ`` from how useful each entry turned out to be:
at every step the attention mass the entries received (averaged over heads, gradient stopped) is a
target distribution for the softmax of their retention scores::

    L_use = Σ_t m_t k_t · CE( ā_t / m_t , softmax_j ρ(e_j) ),   ā_tj = mean_h a_hj,  m_t = Σ_{j ∈ S_t} ā_tj

where ``k_t = 1 - H(ā_t / m_t) / log|S_t|`` is the read's sharpness (a focused read says which entry
mattered; a near-uniform one says little), weighted by ``retention_coef`` (logged as
``memory/usefulness_loss``). With ``hindsight_action_dim`` set (``StrategicMemoryBuffer`` does), training
passes also get each step's reward and action from the trainer and add *hindsight credit*: a pairwise
predictor of a reward from one earlier step of the pass's whole context (not only the store) and the
action taken; the steps that explain the reward become usefulness targets too (see ``_hindsight``).

Cost per step is O(M), independent of episode length. The eviction decisions and keep values are
returned in the trace (``write_slot``, ``keep_u``) and declared in :meth:`replay_spec`: the rollout
stores them and the PPO update passes them back (``forward_replay``) so training replays exactly the
store the agent acted with. With ``ε = 0`` (the default outside a training schedule) the core is
deterministic, and stepping one step at a time equals one call on the whole sequence.

State (batch-first): ``entries`` ``[M, D]`` raw inputs, ``times`` ``[M]`` their episode times,
``keep_u`` ``[M]``, ``valid`` ``[M]`` (``> 0.5`` marks a filled slot) and ``step`` ``[1]``, the episode time
of the next step. The retention scores are in the trace (``retention``), not the state: they are
recomputed from the entries with the current scorer at every step.

The package, by part: :mod:`.store` (the store and its read: :class:`StrategicMemoryCore`'s parameters, state and
forward pass, :class:`StrategicMemoryBuffer`, the registry entry), :mod:`.retention` (keep values, the slot maps,
the usefulness loss), :mod:`.hindsight` (hindsight credit and the read loss; the replay of rewarded contexts is
:mod:`tracerl.memory.hindsight`), :mod:`.features` (the time features).
"""

from .features import TIME_FEATURES, time_features
from .hindsight import HindsightMixin
from .retention import EXPLORE_MODES, RetentionMixin
from .store import StrategicMemoryBuffer, StrategicMemoryCore

__all__ = ["EXPLORE_MODES", "TIME_FEATURES", "HindsightMixin", "RetentionMixin", "StrategicMemoryBuffer",
           "StrategicMemoryCore", "time_features"]
