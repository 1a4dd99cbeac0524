"""gn.plot: every figure renders to a PNG of the requested pixel size, shows what
it claims to show, and bad input is refused by name."""

import struct
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import glassnet as gn  # noqa: E402

DPI = 50


def render(fig, tmp_path, figsize):
    """Save fig as PNG; check its pixel size and that it is not blank."""
    from matplotlib.image import imread

    fig.set_size_inches(*figsize)
    path = tmp_path / "figure.png"
    fig.savefig(path, dpi=DPI)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    assert (width, height) == (round(figsize[0] * DPI), round(figsize[1] * DPI))
    pixels = imread(path)[..., :3]  # (H, W, 3)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10  # drawn, not blank
    return pixels


@pytest.fixture
def trained():
    X, y = gn.datasets.load_iris()
    model = gn.Sequential(gn.Dense(4, 6), gn.Tanh(), gn.Dense(6, 3), seed=0)
    history = model.fit(
        X, y, optimizer=gn.Adam(lr=0.02), epochs=12, validation_split=0.2, verbose=0
    )
    return model, history, X, y


def test_import_glassnet_loads_no_optional_dependency():
    code = (
        "import sys, glassnet as gn\n"
        "heavy = ['matplotlib', 'sklearn', 'tqdm', 'torch', 'safetensors']\n"
        "print([m for m in heavy if m in sys.modules])\n"
        "print(gn.plot.__name__, gn.sklearn.__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["[]", "glassnet.plot glassnet.sklearn"]


def test_history_from_fit_has_a_panel_per_quantity(trained, tmp_path):
    _, history, _, _ = trained
    fig = gn.plot.history(history)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["loss", "accuracy"]  # lr is not a curve
    for ax in fig.axes:
        train, val = ax.get_lines()
        np.testing.assert_array_equal(train.get_xdata(), np.arange(1, 13))
    np.testing.assert_allclose(
        fig.axes[0].get_lines()[1].get_ydata(), history["val_loss"]
    )
    render(fig, tmp_path, (8, 3))


def test_history_from_dict_csv_and_estimator(tmp_path):
    logs = {"loss": [1.0, 0.5, 0.25], "mae": [0.9, 0.6, 0.4]}
    csv_path = tmp_path / "history.csv"
    csv_path.write_text("epoch,loss,mae\n0,1.0,0.9\n1,0.5,0.6\n2,0.25,0.4\n")
    estimator = SimpleNamespace(history_=logs)
    for source in (logs, csv_path, str(csv_path), estimator):
        fig = gn.plot.history(source)
        assert [ax.get_title() for ax in fig.axes] == ["loss", "mae"]
        (line,) = fig.axes[0].get_lines()  # no validation curve
        np.testing.assert_allclose(line.get_ydata(), logs["loss"])
    render(fig, tmp_path, (6, 3))


@pytest.mark.parametrize(
    "source, error",
    [({}, gn.DataError), ({"loss": []}, gn.DataError), (42, gn.ArgumentTypeError)],
)
def test_history_refuses_what_is_not_a_history(source, error):
    with pytest.raises(error, match="plot.history"):
        gn.plot.history(source)


def xor_data(n=120):
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (n, 2))
    return X, (X[:, 0] * X[:, 1] > 0).astype(int)


def test_decision_boundary_of_a_glassnet_model(tmp_path):
    X, y = xor_data()
    model = gn.Sequential(gn.Dense(2, 12), gn.Tanh(), gn.Dense(12, 2), seed=0)
    model.fit(X, y, optimizer=gn.Adam(lr=0.05), epochs=150, verbose=0)
    fig = gn.plot.decision_boundary(model, X, y, resolution=50)
    ax = fig.axes[0]
    points = ax.collections[-1]  # the scatter is drawn last
    assert len(points.get_offsets()) == len(X)
    # every point carries the colour of its own class
    colours = points.get_facecolors()[:, :3]
    assert len(np.unique(colours[y == 0], axis=0)) == 1
    assert len(np.unique(colours[y == 1], axis=0)) == 1
    assert not np.allclose(colours[y == 0][0], colours[y == 1][0])
    pixels = render(fig, tmp_path, (5, 4.5))
    # the quadrants of XOR get different region colours (pixels in opposite corners
    # share a class; the figure's inner area sits between the margins)
    h, w, _ = pixels.shape
    top_left, top_right = (
        pixels[int(0.2 * h), int(0.3 * w)],
        pixels[int(0.2 * h), int(0.85 * w)],
    )
    assert not np.allclose(top_left, top_right, atol=0.05)


def test_decision_boundary_of_an_estimator_with_string_labels(tmp_path):
    pytest.importorskip("sklearn")
    from glassnet.sklearn import GlassClassifier

    X, y = xor_data()
    labels = np.array(["cat", "dog"])[y]
    clf = GlassClassifier(hidden_layer_sizes=(12,), learning_rate=0.05, epochs=100)
    clf.set_params(random_state=0).fit(X, labels)
    fig = gn.plot.decision_boundary(clf, X, labels, resolution=40)
    render(fig, tmp_path, (4, 4))
    with pytest.raises(gn.DataError, match="not among the model's classes"):
        gn.plot.decision_boundary(clf, X, np.array(["cat", "cow"])[y])


def test_decision_boundary_refuses_data_that_is_not_2d():
    model = gn.Sequential(gn.Dense(3, 2), seed=0)
    X = np.zeros((5, 3))
    with pytest.raises(gn.ShapeError, match=r"\(N, 2\)"):
        gn.plot.decision_boundary(model, X, np.zeros(5, int))
    with pytest.raises(gn.ShapeError, match="5 rows"):
        gn.plot.decision_boundary(gn.Sequential(gn.Dense(2, 2)), X[:, :2], [0, 1])


@pytest.mark.parametrize(
    "in_channels, filters, kernel, mosaic_shape",
    [
        (3, 8, 3, (8 * 4 - 1, 3 * 4 - 1)),  # a row per filter, a column per channel
        (1, 10, 5, (3 * 6 - 1, 4 * 6 - 1)),  # one channel: 10 filters wrap to 3 x 4
    ],
)
def test_filters_lays_out_every_kernel(
    in_channels, filters, kernel, mosaic_shape, tmp_path
):
    conv = gn.Conv2D(in_channels, filters, kernel, rng=np.random.default_rng(0))
    fig = gn.plot.filters(conv)
    mosaic = np.ma.filled(fig.axes[0].images[0].get_array(), np.nan)
    assert mosaic.shape == mosaic_shape
    w = conv.weight.data
    np.testing.assert_allclose(mosaic[:kernel, :kernel], w[0, 0])  # first tile
    last = w[-1, -1] if in_channels > 1 else w[9, 0]  # filter 9 sits at row 2, col 1
    top = mosaic_shape[0] - kernel if in_channels > 1 else 2 * (kernel + 1)
    left = mosaic_shape[1] - kernel if in_channels > 1 else 1 * (kernel + 1)
    np.testing.assert_allclose(mosaic[top : top + kernel, left : left + kernel], last)
    assert np.isnan(mosaic[kernel, 0])  # the gap between tiles
    render(fig, tmp_path, (4, 5))


def test_filters_takes_an_array_and_refuses_other_shapes(tmp_path):
    weights = np.random.default_rng(0).normal(size=(100, 2, 3, 3))
    fig = gn.plot.filters(weights, max_filters=6)
    assert fig.axes[0].images[0].get_array().shape == (6 * 4 - 1, 2 * 4 - 1)
    render(fig, tmp_path, (3, 4))
    with pytest.raises(gn.ShapeError, match=r"\(F, C, KH, KW\)"):
        gn.plot.filters(np.zeros((4, 3)))
    with pytest.raises(gn.ArgumentTypeError, match="Conv2D"):
        gn.plot.filters(gn.Tanh())


def test_gradient_flow_of_a_gradcheck_report(trained, tmp_path):
    model, _, X, y = trained
    report = gn.gradcheck(model, X[:8], y[:8], loss="softmax_cross_entropy")
    # the norms in the report are those of a plain backward pass in float64
    copy = gn.Sequential(gn.Dense(4, 6), gn.Tanh(), gn.Dense(6, 3), dtype=np.float64)
    for p, q in zip(copy.parameters(), model.parameters(), strict=True):
        p.data = q.data
    loss = gn.SoftmaxCrossEntropy()
    loss.forward(copy.forward(X[:8].astype(np.float64)), y[:8])
    copy.backward(loss.backward())
    for name, p in copy.named_parameters():
        assert report[name].grad_norm == pytest.approx(np.linalg.norm(p.grad), rel=1e-9)
    fig = gn.plot.gradient_flow(report)
    heights = [bar.get_height() for bar in fig.axes[0].patches]
    np.testing.assert_allclose(heights, [row.grad_norm for row in report.rows])
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["input", "0.weight", "0.bias", "2.weight", "2.bias"]
    render(fig, tmp_path, (6, 4))


class Trace:
    """Stands in for another module's gradient-flow trace: rows via to_dict()."""

    def to_dict(self):
        return {
            "rows": [
                {"layer": "0 Dense", "norm": 2.0},
                {"layer": "2 Dense", "norm": 0.0},
            ]
        }


@pytest.mark.parametrize(
    "source, names, norms",
    [
        ({"a": 1e-3, "b": 10.0}, ["a", "b"], [1e-3, 10.0]),
        ({"w": np.array([3.0, 4.0])}, ["w"], [5.0]),  # a gradient array: its L2 norm
        (Trace(), ["0 Dense", "2 Dense"], [2.0, 0.0]),
        (
            SimpleNamespace(rows=[SimpleNamespace(name="x", grad_norm=0.5)]),
            ["x"],
            [0.5],
        ),
    ],
)
def test_gradient_flow_accepts_dicts_and_traces(source, names, norms, tmp_path):
    fig = gn.plot.gradient_flow(source)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == names
    heights = np.array([bar.get_height() for bar in ax.patches])
    norms = np.array(norms)
    np.testing.assert_allclose(heights[norms > 0], norms[norms > 0])
    assert (heights[norms == 0] > 0).all()  # a zero still shows on the log scale
    assert ax.get_yscale() == "log"
    render(fig, tmp_path, (4, 3))


@pytest.mark.parametrize(
    "source, error, match",
    [
        ({}, gn.DataError, "no gradients"),
        ({"a": float("nan")}, gn.DataError, "non-finite"),
        (SimpleNamespace(rows=[{"name": "w"}]), gn.DataError, "no gradient norm"),
        ("report", gn.ArgumentTypeError, "gradcheck report"),
    ],
)
def test_gradient_flow_refuses_what_holds_no_norms(source, error, match):
    with pytest.raises(error, match=match):
        gn.plot.gradient_flow(source)


def test_gradient_flow_of_the_per_layer_trace(tmp_path):
    from matplotlib.colors import to_rgba

    X, y = gn.datasets.load_iris()
    model = gn.Sequential(
        gn.Dense(4, 8),
        gn.Sigmoid(),
        gn.Dense(8, 8),
        gn.Sigmoid(),
        gn.Dense(8, 3),
        seed=0,
    )
    # a strict threshold, so that the lower layers carry "vanishing" warnings
    trace = gn.gradient_flow(model, X, y, loss="softmax_cross_entropy", vanishing=0.5)
    warned = [bool(row.warnings) for row in trace.rows]
    assert any(warned) and not all(warned)
    for source in (trace, trace.to_dict()):
        ax = gn.plot.gradient_flow(source).axes[0]
        labels = [t.get_text() for t in ax.get_xticklabels()]
        assert labels == [f"{row.index} {row.layer}" for row in trace.rows]
        heights = [bar.get_height() for bar in ax.patches]
        np.testing.assert_allclose(heights, [row.grad_norm for row in trace.rows])
        red = [bar.get_facecolor() == to_rgba("#d62728") for bar in ax.patches]
        assert red == warned
    render(trace.plot(), tmp_path, (5, 4))


def test_gradient_flow_of_a_recurrent_model_draws_a_line_per_step_norm(tmp_path):
    X, y = gn.datasets.make_sequences(32, 10, seed=0)
    model = gn.Sequential(
        gn.Embedding(4, 6),
        gn.GRU(6, 5, return_sequences=True, bidirectional=True),
        gn.LSTM(10, 4),
        gn.Dense(4, 2),
        seed=0,
    )
    trace = gn.gradient_flow(model, X, y)
    expected = [
        (f"{row.index} {row.layer}" + (f" {name}" if len(row.step_norms) > 1 else ""),
         norms)
        for row in trace.rows
        for name, norms in row.step_norms.items()
    ]  # fmt: skip
    assert len(expected) == 3  # GRU forward and reverse, LSTM
    for source in (trace, trace.to_dict()):
        fig = gn.plot.gradient_flow(source)
        bars, steps = fig.axes  # the bars, and the per-step lines below them
        assert steps.get_legend() is not None
        assert len(bars.patches) == len(trace.rows)
        assert steps.get_yscale() == "log" and steps.get_xlabel() == "time step t"
        lines = steps.get_lines()
        assert [ln.get_label() for ln in lines] == [label for label, _ in expected]
        for line, (_, norms) in zip(lines, expected, strict=True):
            np.testing.assert_array_equal(line.get_xdata(), np.arange(10))
            np.testing.assert_allclose(line.get_ydata(), norms)
    plain = gn.Sequential(gn.Dense(4, 3), seed=0)
    X4, y4 = gn.datasets.load_iris()
    assert len(gn.plot.gradient_flow(gn.gradient_flow(plain, X4, y4)).axes) == 1
    render(trace.plot(), tmp_path, (6, 7))
