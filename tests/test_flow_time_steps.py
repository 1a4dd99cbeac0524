"""gradient_flow's gradient per time step for RNN, LSTM and GRU layers.

|dL/dh_t| is checked against finite differences: a subclass of each layer adds
a small change to the hidden state h_t as the forward pass produces it (so the
steps after t and the output read the changed value), and the loss is
differenced. Then the text (80 columns), to_dict, the warning and the sparkline.
PyTorch's retained hidden-state gradients are the oracle in
test_flow_time_steps_torch.py.
"""

import numpy as np
import pytest

import glassnet as gn
from glassnet.reports._time_steps import hidden_gradients
from glassnet.reports._trace import run_trace
from glassnet.reports.flow import SPARK_WIDTH, sparkline

N, T, D, H = 2, 4, 2, 3


def perturbable(cls):
    """cls whose forward adds `delta` (N, H) to h after step call number `at`
    (0 .. T-1 forward, T .. 2T-1 the reverse direction's processing steps)."""

    class Perturbable(cls):
        at, delta = -1, None

        def forward(self, x):
            self._calls = 0
            return super().forward(x)

        def _step(self, xw_t, state, w_hh, b_hh):
            state, cache = super()._step(xw_t, state, w_hh, b_hh)
            if self._calls == self.at:
                state = (state[0] + self.delta, *state[1:])  # h_t only, c_t kept
            self._calls += 1
            return state, cache

    return Perturbable


KINDS = {
    "rnn-tanh": lambda **kw: perturbable(gn.RNN)(D, H, **kw),
    "rnn-relu": lambda **kw: perturbable(gn.RNN)(D, H, "relu", **kw),
    "lstm": lambda **kw: perturbable(gn.LSTM)(D, H, **kw),
    "gru": lambda **kw: perturbable(gn.GRU)(D, H, **kw),
}


def _model(kind, sequences, bidirectional):
    layer = KINDS[kind](return_sequences=sequences, bidirectional=bidirectional)
    width = (2 if bidirectional else 1) * H * (T if sequences else 1)
    head = [gn.Flatten()] if sequences else []
    return gn.Sequential(layer, *head, gn.Dense(width, 2), seed=0, dtype=np.float64)


def _finite_differences(model, X, y, eps=1e-6) -> list[np.ndarray]:
    """dL/dh_t by central differences, (N, T, H) per direction in time order."""
    layer = model[0]

    def loss() -> float:
        return float(np.mean((model.forward(X) - y) ** 2))  # MSE, as loss="mse"

    found = []
    for d in range(len(layer._suffixes())):
        grad = np.zeros((N, T, H))
        for t in range(T):
            layer.at = t if d == 0 else T + (T - 1 - t)  # reverse: reads T-1 first
            for n, j in np.ndindex(N, H):
                layer.delta = np.zeros((N, H))
                layer.delta[n, j] = eps
                plus = loss()
                layer.delta[n, j] = -eps
                grad[n, t, j] = (plus - loss()) / (2 * eps)
        found.append(grad)
    layer.at = -1
    return found


@pytest.mark.parametrize("bidirectional", [False, True], ids=["one-way", "bi"])
@pytest.mark.parametrize("sequences", [False, True], ids=["last", "sequences"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_per_step_gradients_match_finite_differences(kind, sequences, bidirectional):
    rng = np.random.default_rng(1)
    model = _model(kind, sequences, bidirectional)
    X = rng.standard_normal((N, T, D))
    y = rng.standard_normal((N, 2))
    numeric = _finite_differences(model, X, y)

    row = gn.gradient_flow(model, X, y, loss="mse").rows[0]
    traces, _, _ = run_trace(model, X, y=y, loss="mse", dtype=np.float64)
    actual = hidden_gradients(traces[0].layer, traces[0].x, traces[0].g)
    assert len(actual) == len(numeric) == len(row.step_norms)
    for dh, fd, norms in zip(actual, numeric, row.step_norms.values(), strict=True):
        np.testing.assert_allclose(dh, fd, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(
            norms, np.linalg.norm(fd, axis=2).mean(axis=0), rtol=1e-6
        )


def _sequence_model(layer, length=12):
    width = layer.hidden_size * (2 if layer.bidirectional else 1)
    model = gn.Sequential(gn.Embedding(4, 6), layer, gn.Dense(width, 2), seed=0)
    X, y = gn.datasets.make_sequences(32, length, seed=0)
    return model, X, y


def test_text_shows_first_middle_last_and_a_sparkline_in_80_columns():
    model, X, y = _sequence_model(gn.GRU(6, 8, bidirectional=True), length=12)
    report = gn.gradient_flow(model, X, y)
    text = report.to_text(80)
    assert max(len(line) for line in text.splitlines()) <= 80
    norms = report.rows[1].step_norms
    assert list(norms) == ["forward", "reverse"] and len(norms["forward"]) == 12
    assert "|dL/dh_t| per time step (mean over the batch" in text
    for name in ("forward", "reverse"):
        v = norms[name]
        line = next(s for s in text.splitlines() if f"1 GRU {name}:" in s)
        assert f"t=0 {v[0]:.1e}" in line and f"t=5 {v[5]:.1e}" in line
        assert f"t=11 {v[11]:.1e}" in line and line.endswith(sparkline(v))
    assert report.rows[0].step_norms == {} and report.rows[2].step_norms == {}
    layers = report.to_dict()["layers"]
    assert layers[1]["step_norms"] == norms and layers[0]["step_norms"] == {}
    assert "1 GRU forward" in report.to_markdown()


def test_a_long_vanilla_rnn_warns_of_vanishing_through_time_and_a_short_one_not():
    long_model, X, y = _sequence_model(gn.RNN(6, 8), length=40)
    report = gn.gradient_flow(long_model, X, y)
    warning = next(w for w in report.warnings if "through time" in w)
    first, largest = (
        report.rows[1].step_norms["forward"][0],
        max(report.rows[1].step_norms["forward"]),
    )
    assert first < 1e-3 * largest
    assert f"at t=0 is {first / largest:.1e} of its largest" in warning
    assert "an LSTM or GRU" in warning
    short_model, X, y = _sequence_model(gn.RNN(6, 8), length=3)
    assert not any(
        "through time" in w for w in gn.gradient_flow(short_model, X, y).warnings
    )


def test_sparkline_is_log_scaled_sampled_and_blank_for_zeros():
    assert sparkline([1e-8, 1e-4, 1.0]) == "_=#"
    assert sparkline([1.0, 0.0, 10.0]) == "_ #"
    assert sparkline([0.0, 0.0]) == "  " and sparkline([3.0, 3.0]) == "__"
    long = sparkline(np.logspace(-6, 0, 100))
    assert len(long) == SPARK_WIDTH and long[0] == "_" and long[-1] == "#"
    assert list(long) == sorted(long, key="_.-~=+*#".index)  # rising with the values
