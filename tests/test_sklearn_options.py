"""GlassClassifier / GlassRegressor options users bring from scikit-learn: alpha,
dtype, class_weight, sample_weight, a checked layers= output width, verbose, and
the safe save format."""

import io
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")

import glassnet as gn  # noqa: E402
from glassnet.errors import ConfigError, DataError, ModelFileError  # noqa: E402
from glassnet.sklearn import GlassClassifier, GlassRegressor  # noqa: E402


@pytest.fixture
def iris():
    X, y = gn.datasets.load_iris()
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return X, np.array(["setosa", "versicolor", "virginica"])[y]


def linear_step(alpha: float, lr: float):
    """A linear regressor after one full-batch SGD step: (weight, bias)."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    est = GlassRegressor(
        hidden_layer_sizes=(),
        optimizer="sgd",
        learning_rate=lr,
        batch_size=None,
        epochs=1,
        alpha=alpha,
        random_state=0,
    ).fit(X, y)
    weight, bias = (p.data.copy() for p in est.model_.parameters())
    return weight, bias


@pytest.mark.parametrize("alpha", [0.5, 3.0])
def test_alpha_adds_scikit_learns_l2_gradient_to_weights_only(alpha):
    w0, b0 = linear_step(0.0, 1e-12)  # the initial weights, to 1e-12
    w_plain, b_plain = linear_step(0.0, 0.1)
    w_l2, b_l2 = linear_step(alpha, 0.1)
    # d/dW [alpha / (2 N) ||W||^2] = alpha / N * W, N = 20 rows in the batch
    np.testing.assert_allclose(w_l2, w_plain - 0.1 * alpha / 20 * w0, atol=1e-10)
    np.testing.assert_array_equal(b_l2, b_plain)  # biases are not penalised


@pytest.mark.parametrize("cls", [GlassClassifier, GlassRegressor])
@pytest.mark.parametrize("dtype", ["float32", np.float32, "float64"])
def test_dtype_sets_the_network_and_data_precision(cls, dtype, iris):
    X, labels = iris
    y = labels if cls is GlassClassifier else X[:, 0]
    est = cls(hidden_layer_sizes=(8,), epochs=2, dtype=dtype, random_state=0)
    est.fit(X, y)
    expected = np.dtype(dtype)
    assert {p.data.dtype for p in est.model_.parameters()} == {expected}
    out = est.predict_proba(X) if cls is GlassClassifier else est.predict(X)
    assert out.dtype == expected


def test_float64_stays_the_default():
    assert GlassClassifier().dtype == "float64"


@pytest.mark.parametrize(
    "params, match",
    [
        ({"alpha": -1.0}, "alpha must be a number >= 0"),
        ({"alpha": "big"}, "alpha must be a number >= 0"),
        ({"dtype": "int32"}, "dtype must be 'float32' or 'float64'"),
        ({"dtype": "float16"}, "dtype must be 'float32' or 'float64'"),
        ({"class_weight": "even"}, "class_weight"),
    ],
)
def test_bad_new_options_are_named(params, match, iris):
    with pytest.raises(ConfigError, match=match):
        GlassClassifier(epochs=1, **params).fit(*iris)


@pytest.mark.parametrize("class_weight", ["balanced", {"a": 1.0, "b": 4.0}])
def test_class_weight_equals_the_same_sample_weight(class_weight):
    from sklearn.utils.class_weight import compute_sample_weight

    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 2))
    y = np.where(X[:, 0] + 0.5 * rng.normal(size=60) > 0.8, "b", "a")  # imbalanced
    common = dict(hidden_layer_sizes=(6,), epochs=20, random_state=0)
    weighted = GlassClassifier(class_weight=class_weight, **common).fit(X, y)
    sw = compute_sample_weight(class_weight, y)
    by_rows = GlassClassifier(**common).fit(X, y, sample_weight=sw)
    plain = GlassClassifier(**common).fit(X, y)
    np.testing.assert_array_equal(weighted.predict_proba(X), by_rows.predict_proba(X))
    assert not np.array_equal(weighted.predict_proba(X), plain.predict_proba(X))


def test_all_zero_sample_weight_is_refused(iris):
    X, y = iris
    with pytest.raises(DataError, match="sample_weight.*(non-zero|zero for every row)"):
        GlassClassifier(epochs=1).fit(X, y, sample_weight=np.zeros(len(y)))


@pytest.mark.parametrize("width", [1, 2, 5])
def test_layers_output_width_must_match_the_classes(width, iris):
    def factory(input_shape, n_outputs):
        return [gn.Dense(input_shape[0], width)]

    with pytest.raises(
        ConfigError, match=f"outputs {width} values per row, expected 3"
    ):
        GlassClassifier(layers=factory, epochs=1).fit(*iris)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("verbose, shown", [(0, False), (1, True), (2, True)])
def test_verbose_shows_fits_progress(verbose, shown, iris, monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    GlassClassifier(hidden_layer_sizes=(4,), epochs=3, verbose=verbose).fit(*iris)
    assert ("epoch" in terminal.getvalue()) == shown


def three_layers(input_shape, n_outputs):  # module level, as layers= should be
    return [gn.Dense(input_shape[0], 5), gn.Tanh(), gn.Dense(5, n_outputs)]


@pytest.mark.parametrize(
    "make",
    [
        lambda X, y: GlassClassifier((6,), epochs=5, random_state=0).fit(X, y),
        lambda X, y: GlassClassifier(
            layers=three_layers, epochs=5, class_weight="balanced", dtype="float32"
        ).fit(X, y),
        lambda X, y: GlassClassifier((6,), epochs=5).fit(X, y == "setosa"),
        lambda X, y: GlassClassifier(
            (6,),
            epochs=5,
            class_weight={"setosa": 2.0, "versicolor": 1.0, "virginica": 3.0},
        ).fit(X, y),
        lambda X, y: GlassRegressor((6,), epochs=5, alpha=0.1).fit(X, X[:, :2]),
        lambda X, y: GlassRegressor((6,), epochs=5).fit(X, X[:, 0]),
    ],
)
def test_safe_save_and_load_round_trip(make, iris, tmp_path):
    X, y = iris
    est = make(X, y)
    path = tmp_path / "est.safetensors"
    est.save(path)
    assert b"pickle" not in path.read_bytes()
    loaded = type(est).load(path, layers=est.layers)
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    assert loaded.get_params() == est.get_params()
    assert loaded.n_iter_ == est.n_iter_ and loaded.loss_curve_ == est.loss_curve_
    if isinstance(est, GlassClassifier):
        assert loaded.classes_.dtype == est.classes_.dtype
        np.testing.assert_array_equal(loaded.classes_, est.classes_)
        np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))
        assert loaded.score(X, est.predict(X)) == 1.0
    loaded.set_params(warm_start=True, epochs=1).fit(X, est.predict(X))  # refits


def test_load_refuses_other_files(iris, tmp_path):
    X, y = iris
    GlassRegressor((4,), epochs=1).fit(X, X[:, 0]).save(tmp_path / "reg.st")
    with pytest.raises(ModelFileError, match="not a saved GlassClassifier"):
        GlassClassifier.load(tmp_path / "reg.st")
    gn.Sequential(gn.Dense(4, 3), seed=0).save(tmp_path / "plain.st")
    with pytest.raises(ModelFileError, match="plain glassnet model"):
        GlassClassifier.load(tmp_path / "plain.st")
    with pytest.raises(Exception, match="not fitted"):
        GlassClassifier().save(tmp_path / "unfitted.st")


def test_alpha_penalty_is_in_the_logged_loss_and_a_layers_own_l2_is_kept():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    common = dict(
        hidden_layer_sizes=(), optimizer="sgd", learning_rate=1e-12,
        batch_size=None, epochs=1, random_state=0,
    )  # fmt: skip
    plain = GlassRegressor(**common).fit(X, y)
    penalized = GlassRegressor(alpha=2.0, **common).fit(X, y)
    W = penalized.model_.parameters()[0].data
    penalty = 2.0 / (2 * 20) * float(np.sum(W**2))  # scikit-learn's alpha / (2 B)
    assert penalized.loss_curve_[0] == pytest.approx(
        plain.loss_curve_[0] + penalty, rel=1e-9
    )

    def layers(input_shape, n_outputs):  # the user's own l2 option
        return [gn.Dense(input_shape[0], n_outputs, l2=0.3)]

    est = GlassRegressor(layers=layers, epochs=1, random_state=0).fit(X, y)
    assert [layer.l2 for _, layer in est.model_.named_layers()] == [0.3]
