"""What README's "Determinism" section promises about random_state: scikit-learn's
convention for ints, None and numpy Generators, repeated fits and clones."""

import numpy as np
import pytest
from sklearn.base import clone

import glassnet as gn
from glassnet.sklearn import GlassClassifier

OPTIONS = dict(hidden_layer_sizes=(8,), epochs=3)


def _proba(estimator):
    X, y = gn.datasets.load_iris()
    return estimator.fit(X, y).predict_proba(X)


@pytest.mark.parametrize(
    "make_state, refit_equal",
    [
        (lambda: 0, True),  # an int: the same model at every fit
        (lambda: np.random.default_rng(1), False),  # a Generator: used and advanced
        (lambda: np.random.RandomState(1), False),
    ],
)
def test_refitting_one_estimator(make_state, refit_equal):
    estimator = GlassClassifier(**OPTIONS, random_state=make_state())
    first, second = _proba(estimator), _proba(estimator)
    assert np.array_equal(first, second) == refit_equal
    fresh = GlassClassifier(**OPTIONS, random_state=make_state())
    assert np.array_equal(_proba(fresh), first)  # a fresh state repeats the first fit


def test_clones_of_a_generator_estimator_are_equal_and_leave_it_untouched():
    generator = np.random.default_rng(1)
    estimator = GlassClassifier(**OPTIONS, random_state=generator)
    a, b = clone(estimator), clone(estimator)
    assert np.array_equal(_proba(a), _proba(b))
    assert generator.bit_generator.state == np.random.default_rng(1).bit_generator.state
