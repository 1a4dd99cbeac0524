"""The optimizers keep their state out of the subnormal range (FLUSH_BELOW).

A state entry whose parameter stops receiving gradient (a dead ReLU unit) decays
geometrically towards 0 and, without the flush, passes through the subnormal
range, which some CPUs process many times slower. These tests drive such dead
entries for thousands of steps and check every step; a control run with the flush
switched off shows that the same run does reach subnormals, so the check can fail.
"""

import numpy as np
import pytest

import glassnet as gn
from glassnet.train import optimizers

# Decays of 0.9 for every state array (the defaults' beta2 = 0.999 and alpha = 0.99
# would take 10-100x more steps to reach the subnormal range in float64).
DECAYING = [
    pytest.param(lambda: gn.SGD(lr=0.01, momentum=0.9), id="sgd-momentum"),
    pytest.param(
        lambda: gn.SGD(lr=0.01, momentum=0.9, nesterov=True), id="sgd-nesterov"
    ),
    pytest.param(lambda: gn.RMSprop(lr=0.01, alpha=0.9), id="rmsprop"),
    pytest.param(
        lambda: gn.RMSprop(lr=0.01, alpha=0.9, momentum=0.9), id="rmsprop-momentum"
    ),
    pytest.param(lambda: gn.Adam(beta2=0.9), id="adam"),
    pytest.param(lambda: gn.AdamW(beta2=0.9), id="adamw"),
]
DTYPES = [np.float32, np.float64]
# steps for a state entry of ~1 to decay by 0.9 per step to below the smallest
# normal number and on into the subnormal range: 830 (float32), 6730 (float64)
STEPS = {np.float32: 1_000, np.float64: 7_000}


def subnormal_count(a: np.ndarray) -> int:
    magnitude = np.abs(a)
    tiny = np.finfo(a.dtype).tiny  # the smallest normal number
    return int(np.count_nonzero((magnitude > 0) & (magnitude < tiny)))


def run_dead_unit(make, dtype, steps: int) -> tuple[int, np.ndarray]:
    """Train one parameter of 4 entries: entries 0-1 get a gradient every step,
    entries 2-3 only in the first step (dead afterwards, gradient exactly 0).
    Returns the most subnormal state entries seen after any step, and p.data."""
    rng = np.random.default_rng(0)
    p = gn.Parameter(np.ones(4, dtype), "w")
    optimizer = make()
    worst = 0
    for t in range(steps):
        p.grad = np.zeros(4, dtype)
        p.grad[:2] = rng.normal(size=2)
        if t == 0:
            p.grad[2:] = 1.0
        optimizer.step([p])
        for state in optimizer.state_arrays().values():
            worst = max(worst, subnormal_count(state))
    return worst, p.data.copy()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make", DECAYING)
def test_dead_units_state_never_becomes_subnormal(make, dtype):
    worst, _ = run_dead_unit(make, dtype, STEPS[dtype])
    assert worst == 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make", DECAYING)
def test_without_the_flush_the_same_run_reaches_subnormals(make, dtype, monkeypatch):
    """The control: the run above does produce subnormal state when nothing
    flushes it, so the test above can fail."""
    monkeypatch.setattr(optimizers, "FLUSH_BELOW", {})
    worst, _ = run_dead_unit(make, dtype, STEPS[dtype])
    assert worst > 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make", DECAYING)
def test_the_flush_does_not_change_the_parameters(make, dtype, monkeypatch):
    """A flushed entry is far below anything that moves a parameter: thousands
    of steps with and without flushing end with bit-identical parameters."""
    _, flushed = run_dead_unit(make, dtype, STEPS[dtype])
    monkeypatch.setattr(optimizers, "FLUSH_BELOW", {})
    _, unflushed = run_dead_unit(make, dtype, STEPS[dtype])
    np.testing.assert_array_equal(flushed, unflushed)


@pytest.mark.parametrize("dtype", DTYPES)
def test_flush_zeroes_only_entries_below_the_threshold(dtype, rng):
    """Every value >= FLUSH_BELOW (normal, huge, inf, nan, either sign) is kept
    bit for bit; the entries below it, subnormal or not, become exactly 0."""
    below = optimizers.FLUSH_BELOW[np.dtype(dtype)]
    info = np.finfo(dtype)
    kept = np.array(
        [below, -below, 1e-20, 1.0, -3.5, float(info.max), np.inf, -np.inf, np.nan],
        dtype,
    )
    kept = np.concatenate([kept, rng.normal(size=50).astype(dtype)])
    flushed = np.array(
        [
            below / 2,
            -below / 2,
            info.tiny,
            -info.tiny,
            info.tiny / 4,
            info.smallest_subnormal,
        ],
        dtype,
    )
    group = optimizers._Group(dtype, kept.size + flushed.size, ("m", "v"), (0.9,))
    for i, name in enumerate(("m", "v")):
        group.state[name][...] = np.concatenate([kept, flushed])[:: -1 if i else 1]
    group.flush_tiny_state()
    m, v = group.state["m"], group.state["v"]
    np.testing.assert_array_equal(m[: kept.size], kept)  # nan == nan here
    np.testing.assert_array_equal(m[kept.size :], 0.0)
    np.testing.assert_array_equal(v[::-1][: kept.size], kept)
    np.testing.assert_array_equal(v[::-1][kept.size :], 0.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("decay", [0.5, 0.9, 0.95, 0.99])
def test_flush_interval_is_as_long_as_a_kept_value_stays_normal(dtype, decay):
    """A value left at FLUSH_BELOW decays for flush_every steps and is still
    normal; one step more would take it below (unless capped)."""
    every = optimizers.flush_interval(np.dtype(dtype), (decay, 0.999))
    below, tiny = optimizers.FLUSH_BELOW[np.dtype(dtype)], np.finfo(dtype).tiny
    assert below * decay**every >= tiny
    assert (
        every == optimizers._MAX_FLUSH_INTERVAL or below * decay ** (every + 1) < tiny
    )


@pytest.mark.parametrize(
    "dtype, decays",
    [
        pytest.param(np.float64, (), id="no-state"),
        pytest.param(np.float64, (0.0,), id="no-decay"),
        pytest.param(np.float16, (0.9,), id="float16-not-flushed"),
    ],
)
def test_no_flush_where_nothing_decays_or_no_threshold(dtype, decays):
    assert optimizers.flush_interval(np.dtype(dtype), decays) == 0
