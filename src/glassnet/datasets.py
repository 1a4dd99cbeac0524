"""Small data sets: Iris (shipped in the package) and generators for tests and examples.

Every generator takes a `seed` and uses its own np.random.Generator; NumPy's
global random state is never read or changed.
"""

from importlib import resources

import numpy as np

from glassnet._validation import check_in_range, check_positive_int
from glassnet.training import train_test_split

IRIS_FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
IRIS_CLASSES = ("setosa", "versicolor", "virginica")


def load_iris() -> tuple[np.ndarray, np.ndarray]:
    """Fisher's Iris data: X (150, 4) float64 in cm, y (150,) int64 in {0, 1, 2}.

    Features: IRIS_FEATURES; classes: IRIS_CLASSES. Source: UCI Machine Learning
    Repository (Fisher, 1936), the copy distributed with scikit-learn, shipped
    inside glassnet as data/iris.csv.
    """
    with resources.files("glassnet").joinpath("data/iris.csv").open("r") as fh:
        table = np.loadtxt(fh, delimiter=",", comments="#")
    return table[:, :4].copy(), table[:, 4].astype(np.int64)


def make_xor(n_samples: int = 4, noise: float = 0.0, seed: int | None = None):
    """XOR: X (n, 2) float64, y (n,) int64 = x0 XOR x1.

    n_samples=4 with noise=0 gives the four corners (0,0)->0, (0,1)->1,
    (1,0)->1, (1,1)->0 in that order; more samples repeat the corners, and
    noise adds Gaussian jitter of that standard deviation.
    """
    check_positive_int("make_xor", n_samples=n_samples)
    corners = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    X = corners[np.arange(n_samples) % 4]
    if noise:
        X = X + np.random.default_rng(seed).normal(0.0, noise, X.shape)
    y = (corners[np.arange(n_samples) % 4].sum(axis=1) == 1).astype(np.int64)
    return X, y


def make_blobs(n_samples: int = 100, centers: int = 3, n_features: int = 2,
               std: float = 1.0, seed: int | None = None):
    """Gaussian blobs: X (n, n_features), y (n,) int64 in [0, centers)."""
    check_positive_int("make_blobs", n_samples=n_samples, centers=centers, n_features=n_features)
    rng = np.random.default_rng(seed)
    means = rng.uniform(-10.0, 10.0, (centers, n_features))
    y = np.arange(n_samples) % centers
    X = means[y] + rng.normal(0.0, std, (n_samples, n_features))
    order = rng.permutation(n_samples)
    return X[order], y[order].astype(np.int64)


def make_spirals(n_samples: int = 300, classes: int = 3, noise: float = 0.2,
                 seed: int | None = None):
    """Interleaved spirals (the cs231n data set): X (n, 2), y (n,) int64."""
    check_positive_int("make_spirals", n_samples=n_samples, classes=classes)
    rng = np.random.default_rng(seed)
    y = np.arange(n_samples) % classes
    r = rng.uniform(0.0, 1.0, n_samples)
    theta = y * (2 * np.pi / classes) + r * 4.0 + rng.normal(0.0, noise, n_samples)
    X = np.column_stack([r * np.sin(theta), r * np.cos(theta)])
    return X, y.astype(np.int64)


def make_correlated(n_samples: int = 500, n_features: int = 8, n_latent: int = 2,
                    noise: float = 0.05, seed: int | None = None) -> np.ndarray:
    """Data near an n_latent-dimensional curved surface in [0, 1]^n_features:
    X (n, n_features) = sigmoid(latent @ mixing) + noise. An autoencoder with
    a bottleneck of n_latent units can reconstruct it well."""
    check_positive_int("make_correlated", n_samples=n_samples, n_features=n_features,
                       n_latent=n_latent)
    check_in_range("make_correlated", "noise", noise, 0.0, np.inf)
    rng = np.random.default_rng(seed)
    latent = rng.normal(0.0, 1.0, (n_samples, n_latent))
    mixing = rng.normal(0.0, 1.5, (n_latent, n_features))
    X = 1.0 / (1.0 + np.exp(-latent @ mixing)) + rng.normal(0.0, noise, (n_samples, n_features))
    return X


__all__ = [
    "IRIS_CLASSES",
    "IRIS_FEATURES",
    "load_iris",
    "make_blobs",
    "make_correlated",
    "make_spirals",
    "make_xor",
    "train_test_split",
]
