"""Bootstrapped targets shared by the off-policy algorithms: n-step returns on replayed windows, R2D2's
value rescaling, Polyak averaging and the masked mean.

Windows are time-major ``[T, N]`` (``T`` rows of ``N`` replayed sequences). A row is an observation; rows with an
action are steps, and every episode ends with one extra *final* row that holds the observation after the last
action (terminal, or the truncation's final observation) and no action.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

RESCALE_EPS = 1e-3
"""R2D2's epsilon in the value rescaling ``h`` (Kapturowski et al. 2019, after Pohlen et al. 2018)."""


def value_rescale(x: Tensor, eps: float = RESCALE_EPS) -> Tensor:
    """R2D2's invertible value rescaling ``h(x) = sign(x) (sqrt(|x| + 1) - 1) + eps x`` (elementwise)."""
    return torch.sign(x) * (torch.sqrt(x.abs() + 1.0) - 1.0) + eps * x


def inverse_value_rescale(x: Tensor, eps: float = RESCALE_EPS) -> Tensor:
    """The inverse of :func:`value_rescale` (Pohlen et al. 2018, Proposition A.2)::

        h^{-1}(x) = sign(x) ( ((sqrt(1 + 4 eps (|x| + 1 + eps)) - 1) / (2 eps))^2 - 1 )
    """
    if eps == 0.0:
        return torch.sign(x) * ((x.abs() + 1.0) ** 2 - 1.0)
    root = (torch.sqrt(1.0 + 4.0 * eps * (x.abs() + 1.0 + eps)) - 1.0) / (2.0 * eps)
    return torch.sign(x) * (root**2 - 1.0)


def nstep_targets(
    reward: Tensor,
    step_ok: Tensor,
    row_ok: Tensor,
    boot_value: Tensor,
    terminal: Tensor,
    gamma: float,
    n: int,
    continue_ok: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """n-step returns with a bootstrap, truncated at the end of the episode (never across it).

    For a step ``t`` let ``m = min(n, number of steps left in the episode from t)``; then::

        G_t = sum_{i=0}^{m-1} gamma^i r_{t+i} + gamma^m (1 - terminal_{t+m}) V_{t+m}

    where row ``t + m`` is either ``n`` steps ahead or the episode's final row (``terminal`` there when the
    episode was terminated, so ``V`` is not used; a truncated episode bootstraps on its final observation).
    With ``continue_ok`` the sum also stops at the first later row ``t + i`` (``i >= 1``) where it is False, and
    bootstraps there: Watkins's Q(λ) cut (Watkins 1989; Sutton and Barto 2018, section 12.10), which ends a
    return at the first exploratory action so that what exploration did afterwards never enters the target of
    a greedy policy's value.

    Args:
        reward: ``[T, N]`` reward of each step row (ignored on other rows).
        step_ok: ``[T, N]`` bool, the row is a real step of the window's episode (it has an action).
        row_ok: ``[T, N]`` bool, the row is a real row of the window's episode (steps and the final row).
        boot_value: ``[T, N]`` the bootstrap value ``V`` of every row.
        terminal: ``[T, N]`` bool, True on final rows of terminated episodes.
        gamma: discount.
        n: steps before bootstrapping (>= 1).
        continue_ok: ``[T, N]`` bool or None: False on rows whose step a return must not run through (their
            action was not the greedy one). A row's own action never cuts its own return. None: no cuts.

    Returns:
        ``(G, valid, discount)`` all ``[T, N]``: the targets, whether ``G_t`` could be formed (row ``t`` is a step
        and its bootstrap row ``t + m`` lies inside the window), and ``gamma^m`` (0 where terminal).
    """
    if n < 1:
        raise ValueError(f"n={n} is invalid: must be >= 1")
    alive = step_ok.clone()  # rows t..t+i are all steps of the episode
    ret = torch.zeros_like(reward)
    m = torch.zeros(reward.shape, dtype=torch.int64, device=reward.device)  # steps summed into G_t
    for i in range(n):
        if i > 0:
            alive = alive & _shift(step_ok, i, False)
            if continue_ok is not None:
                alive = alive & _shift(continue_ok, i, False)
        ret = ret + torch.where(alive, (gamma**i) * _shift(reward, i, 0.0), torch.zeros_like(reward))
        m = m + alive.long()
    # row t + m: n steps ahead, or the episode's final row; gathered from the shifted copies
    idx = m.unsqueeze(0)
    ok_at = torch.stack([_shift(row_ok, i, False) for i in range(n + 1)]).gather(0, idx)[0]
    v_at = torch.stack([_shift(boot_value, i, 0.0) for i in range(n + 1)]).gather(0, idx)[0]
    term_at = torch.stack([_shift(terminal, i, False) for i in range(n + 1)]).gather(0, idx)[0]
    valid = step_ok & ok_at
    discount = torch.where(valid & ~term_at, torch.pow(torch.full_like(reward, gamma), m.to(reward.dtype)),
                           torch.zeros_like(reward))
    target = ret + discount * torch.where(valid, v_at, torch.zeros_like(v_at))
    return target, valid, discount


def _shift(x: Tensor, i: int, fill: float | bool) -> Tensor:
    """``out[t] = x[t + i]`` (``fill`` beyond the end)."""
    if i == 0:
        return x
    pad = torch.full((min(i, x.shape[0]), *x.shape[1:]), fill, dtype=x.dtype, device=x.device)
    return torch.cat([x[i:], pad], dim=0)[: x.shape[0]]


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """``sum(mask * x) / max(sum(mask), 1)``, the library's convention for padded sequences."""
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp_min(1.0)


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """``theta_target <- (1 - tau) theta_target + tau theta_source`` for every parameter (tau = 1: a hard copy).
    Buffers are copied."""
    for tp, sp in zip(target.parameters(), source.parameters()):
        tp.lerp_(sp, tau)
    for tb, sb in zip(target.buffers(), source.buffers()):
        tb.copy_(sb)


__all__ = ["RESCALE_EPS", "inverse_value_rescale", "masked_mean", "nstep_targets", "polyak_update", "value_rescale"]
