"""Finite differences that know when they cannot be trusted (used by gradcheck).

Three things decide whether a difference quotient may judge an analytic gradient:

* f's rounding noise near the point (`measured_noise`), measured on either side
  of it, never through it: exact ties (a ReLU at exactly 0, a max-pool window of
  equal values) sit at the point itself, and a kink there is not noise;
* whether f bends within the step (`probe`): a kink (ReLU at 0, a max-pool
  tie) or a curvature too strong for the step makes the central difference
  differ from the one-sided derivative the analytic gradient is, so a
  disagreement is only called an error when no kink or bend could explain it;
* whether a whole-tensor direction crosses a kink (`project_groups`): the
  direction that covers the entries a sample skipped is split until each part
  is smooth, so ties anywhere in the tensor are found, not only at sampled
  entries.
"""

import heapq
import itertools
from dataclasses import dataclass

import numpy as np

ROUNDING = 8 * np.finfo(np.float64).eps  # per unit of |f|
NOISE_POINTS = 16  # evaluations of f on each side of the point for its noise
_GAMMA6 = 518400 / 479001600  # (6!)^2 / 12!: 6th differences of noise -> variance
_CHI2_MEDIAN = 0.4549  # median of a squared standard normal
# An error up to this multiple of the bend statistics is explained by f bending
# within the step: one kink gives at most 2.5 (the worst place for it is 2/7 of
# a step away), a smooth third derivative 4/3 (see probe).
_BEND_FACTOR = 4.0
# A bend beyond this many rounding allowances is a kink, not noise (noise alone
# keeps A, the noisier statistic, near 1 allowance; 12 leaves room for a noise
# estimate 3 times too low)
_KINK = 12.0
# f noisier than float64 rounding by more than this factor (float32 arithmetic
# inside f: about 1e8) is differenced with a larger step (see step_for)
NOISY = 1e4
_MAX_STEP = 1e-2


def same_value(a: float, b: float) -> bool:
    """f evaluated twice at one point: equal, up to float64 rounding of |f|."""
    if np.isnan(a) or np.isnan(b):
        return bool(np.isnan(a) and np.isnan(b))
    return abs(a - b) <= ROUNDING * max(abs(a), 1.0)


def measured_noise(objective, value: np.ndarray, eps: float) -> float:
    """Standard deviation of f's rounding noise near `value`, measured as ECnoise
    does (More and Wild, 2011): f at points eps apart (per entry) along a fixed
    random direction, the step the differences take. Over such small steps f is
    a polynomial to machine precision, so its 6th differences are rounding alone.
    It matters where f cancels: a confident softmax cross-entropy computes
    log(1 + tiny), whose error is machine epsilon, not machine epsilon * |f|.

    The points lie on either side of the point (k = 1..16 steps each way), never
    on it: ties sit exactly at the point, and the kink they make would be read
    as enormous noise, an allowance that would hide real errors. A kink crossed
    further out spoils the few differences whose points straddle it, so the
    variance comes from the median of the 20 squared differences (a chi-square
    median, 0.455 of the mean): low by 2.6x at worst in 1 % of cases, as good as
    a mean over one side. Unless a quarter or more of them are exactly 0: then f
    is quantised (constant between float steps, as float32 arithmetic makes it),
    and its rare steps are the noise, so their mean is taken.
    """
    u = np.random.default_rng(0).standard_normal(value.shape) * eps
    saved = value.copy()
    diffs = []
    try:
        for sign in (1.0, -1.0):
            fs = np.empty(NOISE_POINTS)
            for k in range(NOISE_POINTS):
                value[...] = saved + (sign * (k + 1)) * u
                fs[k] = objective()
            diffs.append(np.diff(fs, n=6))
    finally:
        value[...] = saved
    d2 = np.concatenate(diffs) ** 2
    if np.mean(d2 == 0.0) >= 0.25:
        variance = _GAMMA6 * float(np.mean(d2))
    else:
        variance = _GAMMA6 * float(np.median(d2)) / _CHI2_MEDIAN
    return float(np.sqrt(variance))


def step_for(f0: float, sigma: float, eps: float) -> float:
    """The difference step: eps, unless f is far noisier than float64 rounding.

    The error of a central difference is about 8 sigma / h from noise and
    h^2 |f3| / 6 from truncation (f3, the third derivative). At h = 1e-6 float32
    noise (sigma ~ 1e-7 |f|) swamps any gradient, so a noisy f gets the classical
    balance of the two, h = cbrt(sigma / |f|) (|f| floored at 1, f3 taken to be
    of the order of f): about 4e-3 for float32, at most 1e-2.
    """
    scale = max(abs(f0), 1.0)
    if 8.0 * sigma <= NOISY * ROUNDING * scale:
        return eps
    return float(max(eps, min(_MAX_STEP, np.cbrt(sigma / scale))))


@dataclass
class Probe:
    """One directional comparison. status: "ok" (agrees up to the threshold once
    rounding is allowed for), "fail" (disagrees by more than rounding, a kink or
    a bend could explain) or "kink" (f bends within the step: not confirmed)."""

    status: str
    numeric: float
    error: float  # |a - n| beyond the rounding allowance, relative
    raw: float  # |a - n|, relative
    evaluations: int


def probe(move, f0, h, analytic, allowance, scale, threshold) -> Probe:
    """Compare `analytic`, a directional derivative, with central differences.

    move(t) sets the array to the point + t * direction and returns f there (the
    caller restores the point). The central difference n = (f(h) - f(-h)) / 2h
    passes if |a - n| <= allowance + threshold * (|a| + |n|), the allowance being
    the rounding error a difference of f cannot avoid. Otherwise f is also
    evaluated at +-h/2, and two statistics measure how far f is from a smooth
    function over the step:

        A = J(h) - 2 J(h/2), J(s) = (f(s) - 2 f(0) + f(-s)) / s  (a slope jump)
        B = D(h) - D(h/2),   D(s) = (f(s) - f(-s)) / 2s     (a moving slope)

    Both vanish for a polynomial of degree 3, up to rounding: noise alone keeps
    them within a few times the allowance. A bend beyond 12 allowances is a kink
    (or a curvature the step cannot resolve): at a kink f has no derivative,
    backward returns one of several candidates (at a pixel feeding several ReLUs
    at exactly 0, not even one of the two one-sided slopes), so the entry is
    "kink", not confirmed, whatever its error. A smaller bend can still explain
    a small error: one kink at distance d < h with slope jump K makes
    |n - a| = K (1 - d/h) / 2 and max(|A|, |B|) >= K / 7, so at most 2.5
    max(|A|, |B|); a smooth third derivative f3 makes n - f' = h^2 f3 / 6 and
    B = h^2 f3 / 8. An error within 4 max(|A|, |B|) (plus the allowance) is
    therefore "kink" too; only a larger one is "fail".
    """
    f_plus, f_minus = move(h), move(-h)
    n = (f_plus - f_minus) / (2 * h)
    diff = abs(analytic - n)
    denom = max(abs(analytic) + abs(n), scale, 1e-300)
    raw = diff / denom
    error = max(0.0, diff - allowance) / denom
    if not np.isfinite(n) or error <= threshold:
        return Probe("ok" if np.isfinite(n) else "fail", n, error, raw, 2)
    f_plus2, f_minus2 = move(h / 2), move(-h / 2)
    jump = (f_plus + f_minus - 4 * (f_plus2 + f_minus2) + 6 * f0) / h  # A
    drift = n - (f_plus2 - f_minus2) / h  # B
    bend = max(abs(jump), abs(drift))
    explained = max(0.0, diff - allowance - _BEND_FACTOR * bend) / denom
    kink = bend > _KINK * allowance or explained <= threshold
    return Probe("kink" if kink else "fail", n, error, raw, 4)


@dataclass
class Projection:
    """What the whole-tensor check found: the largest error (after the rounding
    allowance) over the parts it could judge, whether one failed, and how many
    entries no smooth part covered."""

    error: float = 0.0
    raw: float = 0.0
    failed: bool = False
    uncovered: np.ndarray | None = None  # flat indices, sorted
    evaluations: int = 0


def project_groups(
    objective, value, analytic, entries, f0, h, noise, threshold, rng, budget,
    kinks=(),
) -> Projection:  # fmt: skip
    """Check sum(analytic * u) along random directions u over `entries` (flat
    indices), splitting a direction that crosses a kink in two halves and
    checking each, until every part is smooth or `budget` evaluations are spent.

    One direction over every entry catches an error in entries a sample skipped.
    With ties in the tensor (a ReLU at exactly 0, equal values in a max-pool
    window) such a direction crosses kinks, so the entries start in contiguous
    stretches between the sampled entries found on kinks (`kinks`), and a kinked
    stretch is halved; the largest parts go first, so that where ties cluster,
    as an image's constant background does, the smooth rest is covered in a few
    evaluations. Entries left in a kinked part when the budget ends are
    `uncovered`.
    """
    result = Projection()
    entries = np.asarray(entries)
    cuts = np.searchsorted(entries, np.asarray(kinks, dtype=int))
    parts = [part for part in np.split(entries, cuts) if len(part)]
    ticket = itertools.count()  # among equal sizes, first come first served
    queue = [(-len(part), next(ticket), part) for part in parts]
    heapq.heapify(queue)  # the largest part first
    saved = value.copy()
    uncovered: list[np.ndarray] = []
    try:
        while queue:
            _, _, group = heapq.heappop(queue)
            if result.evaluations + 4 > budget:
                uncovered.append(group)
                continue
            u = np.zeros(value.size)
            u[group] = rng.standard_normal(len(group))
            u = u.reshape(value.shape)

            def move(t, u=u):
                value[...] = saved + t * u
                return objective()

            # relative to the terms summed, not only to their sum: a random u can
            # make sum(analytic * u) cancel to almost nothing, and rounding noise
            # would then fail a correct gradient
            terms = float(np.sum(np.abs(analytic * u)))
            p = probe(
                move,
                f0,
                h,
                float(np.sum(analytic * u)),
                noise * np.sqrt(len(group)),
                terms,
                threshold,
            )
            value[...] = saved
            result.evaluations += p.evaluations
            if p.status == "kink":
                if len(group) == 1:
                    uncovered.append(group)
                else:
                    half = len(group) // 2
                    for part in (group[:half], group[half:]):
                        heapq.heappush(queue, (-len(part), next(ticket), part))
                continue
            result.error = max(result.error, p.error)
            result.raw = max(result.raw, p.raw)
            result.failed |= p.status == "fail"
    finally:
        value[...] = saved
    result.uncovered = (
        np.sort(np.concatenate(uncovered)) if uncovered else np.zeros(0, dtype=int)
    )
    return result
