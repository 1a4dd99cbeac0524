"""GlassClassifier and GlassRegressor: scikit-learn's own estimator checks, then
the parts of the contract those checks do not pin down (labels, partial_fit,
warm_start, random state, Pipeline and GridSearchCV)."""

import pickle

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import glassnet as gn  # noqa: E402
from glassnet.sklearn import GlassClassifier, GlassRegressor  # noqa: E402


def tanh_mlp(input_shape, n_outputs):
    """A layers= factory (module level, so that the estimator pickles)."""
    return [gn.Dense(input_shape[0], 12), gn.Tanh(), gn.Dense(12, n_outputs)]


# Every check passes with the defaults; no expected failures are listed. Two
# checks per estimator are skipped by scikit-learn itself when optional packages
# are absent: *_data_not_an_array needs pandas, check_array_api_input needs
# SCIPY_ARRAY_API=1 and array-api-compat.
@parametrize_with_checks(
    [
        GlassClassifier(),
        GlassRegressor(),
        GlassClassifier(layers=tanh_mlp, learning_rate=0.01, epochs=50),
    ]
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture
def iris():
    X, y = gn.datasets.load_iris()
    return (X - X.mean(axis=0)) / X.std(axis=0), y


def small(cls=GlassClassifier, **params):
    defaults = dict(
        hidden_layer_sizes=(8,), learning_rate=0.02, epochs=40, random_state=0
    )
    return cls(**{**defaults, **params})


def test_string_labels_and_predict_proba_follows_classes_order(iris):
    X, y = iris
    names = np.array(["virginica", "setosa", "versicolor"])  # not sorted
    labels = names[y]
    clf = small().fit(X, labels)
    assert list(clf.classes_) == sorted(names)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    for j, name in enumerate(
        clf.classes_
    ):  # column j is the probability of classes_[j]
        assert proba[labels == name, j].mean() > 0.6
    assert (clf.predict(X) == labels).mean() > 0.9
    assert clf.predict(X).dtype == labels.dtype


def test_binary_labels_of_any_type_use_one_logit():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 2))
    labels = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    clf = small(epochs=60).fit(X, labels)
    assert clf.model_.layers[-1].out_features == 1  # sigmoid cross-entropy on a logit
    yes = list(clf.classes_).index("yes")
    assert clf.predict_proba(X)[labels == "yes", yes].mean() > 0.7
    assert clf.score(X, labels) > 0.9


@pytest.mark.parametrize("method", ["predict", "predict_proba", "predict_log_proba"])
def test_unfitted_estimator_raises_not_fitted(method, iris):
    with pytest.raises(NotFittedError):
        getattr(GlassClassifier(), method)(iris[0])


def test_partial_fit_needs_classes_then_trains_one_epoch_per_call(iris):
    X, y = iris
    clf = small()
    with pytest.raises(gn.ConfigError, match="classes"):
        clf.partial_fit(X, y)
    clf.partial_fit(X[:50], y[:50], classes=[0, 1, 2])  # first batch: one class only
    assert list(clf.classes_) == [0, 1, 2] and clf.n_iter_ == 1
    for _ in range(30):
        clf.partial_fit(X, y)
    assert clf.n_iter_ == 31 and len(clf.loss_curve_) == 31
    assert clf.loss_curve_[-1] < clf.loss_curve_[1]
    assert clf.score(X, y) > 0.85
    with pytest.raises(gn.DataError, match="not among the classes"):
        clf.partial_fit(X[:3], np.array([0, 1, 7]))
    with pytest.raises(ValueError, match="features"):
        clf.partial_fit(X[:, :3], y)


def test_warm_start_continues_exactly_where_fit_stopped(iris):
    X, y = iris
    once = small(epochs=20).fit(X, y)
    twice = small(epochs=10, warm_start=True).fit(X, y).fit(X, y)
    np.testing.assert_array_equal(twice.predict_proba(X), once.predict_proba(X))
    assert twice.n_iter_ == 20
    cold = small(epochs=10).fit(X, y)
    refit = clone(cold).fit(X, y).fit(X, y)  # warm_start=False: every fit starts afresh
    np.testing.assert_array_equal(refit.predict_proba(X), cold.predict_proba(X))


def test_random_state_repeats_runs_and_global_state_is_untouched(iris):
    X, y = iris
    before = np.random.get_state()[1].copy()
    a = small(random_state=3).fit(X, y).predict_proba(X)
    b = small(random_state=3).fit(X, y).predict_proba(X)
    c = small(random_state=4).fit(X, y).predict_proba(X)
    small(random_state=None).fit(X, y)
    small(random_state=np.random.default_rng(5)).fit(X, y)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_get_params_set_params_and_clone():
    clf = GlassClassifier(hidden_layer_sizes=(5, 3), optimizer="sgd")
    params = clf.get_params()
    assert params["hidden_layer_sizes"] == (5, 3) and params["optimizer"] == "sgd"
    clf.set_params(epochs=7, learning_rate=0.5)
    copy = clone(clf)
    assert copy.get_params() == clf.get_params() and copy is not clf
    assert not hasattr(copy, "model_")


def test_optimizer_instance_is_copied_not_trained(iris):
    X, y = iris
    sgd = gn.SGD(lr=0.1, momentum=0.9)
    clf = small(optimizer=sgd).fit(X, y)
    assert sgd.t == 0 and sgd.params == []  # the hyperparameter is left as given
    assert clf.optimizer_.t > 0 and clf.optimizer_.momentum == 0.9
    assert clf.score(X, y) > 0.85


def test_pickled_estimator_keeps_training_like_the_original(iris):
    X, y = iris
    clf = small(epochs=5).fit(X, y)
    copy = pickle.loads(pickle.dumps(clf))
    for est in (clf, copy):
        for _ in range(3):
            est.partial_fit(X, y)
    # the copy's weights must move (they are no longer views into its optimizer)
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    assert copy.optimizer_.t == clf.optimizer_.t


def test_early_stopping_stops_and_keeps_validation_history():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 5))
    y = rng.integers(0, 2, 120)  # noise: the validation loss soon stops improving
    clf = small(hidden_layer_sizes=(64,), epochs=500, early_stopping=True, patience=5)
    clf.fit(X, y)
    assert clf.n_iter_ < 500
    assert len(clf.history_["val_loss"]) == clf.n_iter_


def test_regressor_single_and_multi_output():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(200, 3))
    Y = np.column_stack([X @ [1.0, -2.0, 0.5], np.sin(2 * X[:, 0])])
    reg = small(GlassRegressor, hidden_layer_sizes=(32,), epochs=150).fit(X, Y[:, 0])
    assert reg.predict(X).shape == (200,)
    assert reg.score(X, Y[:, 0]) > 0.95
    multi = small(GlassRegressor, hidden_layer_sizes=(32,), epochs=150).fit(X, Y)
    assert multi.predict(X).shape == (200, 2)
    assert multi.score(X, Y) > 0.9


def test_layers_factory_gets_input_shape_and_output_count(iris):
    X, y = iris
    seen = []

    def factory(input_shape, n_outputs):
        seen.append((input_shape, n_outputs))
        return gn.Sequential(gn.Dense(4, 6), gn.ReLU(), gn.Dense(6, n_outputs))

    clf = GlassClassifier(layers=factory, epochs=30, learning_rate=0.02, random_state=0)
    clf.fit(X, y)
    assert seen == [((4,), 3)]
    assert [type(layer).__name__ for layer in clf.model_] == ["Dense", "ReLU", "Dense"]
    assert clf.model_.dtype == np.float64
    assert clf.score(X, y) > 0.85


def residual_mlp(input_shape, n_outputs):
    return [
        gn.Dense(input_shape[0], 8),
        gn.Tanh(),
        gn.Residual(gn.Sequential(gn.Dense(8, 8), gn.Tanh(), gn.Dense(8, 8))),
        gn.Dense(8, n_outputs),
    ]


def concat_softmax(input_shape, n_outputs):  # one layer; ends in a nested Softmax
    return gn.Sequential(
        gn.Concat(
            gn.Dense(input_shape[0], 3), gn.Sequential(gn.Dense(4, 5), gn.Tanh())
        ),
        gn.Sequential(gn.Dense(8, n_outputs), gn.Softmax()),
    )


def one_residual(input_shape, n_outputs):
    return gn.Residual(gn.Sequential(gn.Dense(4, 6), gn.Tanh(), gn.Dense(6, 4)))


@pytest.mark.parametrize(
    "factory, loss, deep_name",
    [
        (residual_mlp, "softmax_cross_entropy", "2.block.2.weight"),
        (concat_softmax, "cross_entropy", "0.1.0.bias"),
    ],
)
def test_layers_factory_may_return_layers_that_hold_layers(
    factory, loss, deep_name, iris
):
    X, y = iris
    clf = GlassClassifier(layers=factory, epochs=40, learning_rate=0.02, random_state=0)
    clf.fit(X, y)
    assert clf.loss_ == loss  # found inside the nested Sequential
    params = dict(clf.model_.named_parameters())
    assert deep_name in params
    assert all(p.data.dtype == np.float64 for p in params.values())
    assert clf.score(X, y) > 0.85


def test_layers_factory_may_return_one_residual_layer(iris):
    X, _ = iris
    Y = np.tanh(X)  # four targets: the residual block keeps the shape
    reg = GlassRegressor(layers=one_residual, epochs=60, learning_rate=0.02,
                         random_state=0)  # fmt: skip
    reg.fit(X, Y)
    assert [type(layer).__name__ for layer in reg.model_] == ["Residual"]
    assert reg.predict(X).shape == (150, 4)
    assert reg.score(X, Y) > 0.8


@pytest.mark.parametrize(
    "params, match",
    [
        ({"hidden_layer_sizes": (4, 0)}, "hidden_layer_sizes"),
        ({"hidden_layer_sizes": "wide"}, "hidden_layer_sizes"),
        ({"activation": "softmax"}, "activation"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"batch_size": 0}, "batch_size"),
        ({"epochs": 2.5}, "epochs"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
        ({"verbose": 3}, "verbose"),
        ({"layers": "mlp"}, "layers"),
        ({"random_state": "seed"}, "random_state"),
    ],
)
def test_bad_hyperparameters_are_named_at_fit(params, match, iris):
    clf = GlassClassifier(**params)  # constructing never validates (sklearn contract)
    with pytest.raises(gn.ConfigError, match=match):
        clf.fit(*iris)


def test_bad_data_raises_glassnet_errors_with_sklearn_messages(iris):
    X, y = iris
    clf = small().fit(X, y)
    with pytest.raises(gn.DataError, match="X has 3 features, but GlassClassifier"):
        clf.predict(X[:, :3])
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(gn.DataError, match="NaN"):
        clf.predict(bad)
    with pytest.raises(gn.DataError, match="Unknown label type"):
        small().fit(X, X[:, 0])  # continuous targets for a classifier
    with pytest.raises(gn.DataError, match="at least 2 classes"):
        small().fit(X, np.zeros(len(X)))


def test_pipeline_and_grid_search():
    X, y = gn.datasets.load_iris()  # unscaled: the pipeline scales it
    pipe = make_pipeline(StandardScaler(), small(epochs=30))
    grid = GridSearchCV(
        pipe,
        {
            "glassclassifier__hidden_layer_sizes": [(2,), (16,)],
            "glassclassifier__learning_rate": [1e-4, 0.03],
        },
        cv=3,
    )
    grid.fit(X, y)
    assert grid.best_params_["glassclassifier__learning_rate"] == 0.03
    assert grid.best_score_ > 0.85
    assert grid.predict(X).shape == (150,)
    assert grid.best_estimator_[-1].n_features_in_ == 4
