"""Small data sets: Iris (shipped in the package) and generators for tests and examples.

Every generator takes a `seed` and uses its own np.random.Generator; NumPy's
global random state is never read or changed.
"""

import numpy as np

from glassnet._validation import check_in_range, check_positive_int
from glassnet.errors import ConfigError, MissingDependencyError

IRIS_FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
IRIS_CLASSES = ("setosa", "versicolor", "virginica")


def load_iris() -> tuple[np.ndarray, np.ndarray]:
    """Fisher's Iris data: X (150, 4) float64 in cm, y (150,) int64 in {0, 1, 2}.

    Features: IRIS_FEATURES; classes: IRIS_CLASSES. Source: UCI Machine Learning
    Repository (Fisher, 1936), the copy distributed with scikit-learn, shipped
    inside glassnet as data/iris.csv.
    """
    from importlib import resources  # here, not at the top: 25 ms of import glassnet

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


def make_blobs(
    n_samples: int = 100,
    centers: int = 3,
    n_features: int = 2,
    std: float = 1.0,
    seed: int | None = None,
):
    """Gaussian blobs: X (n, n_features), y (n,) int64 in [0, centers)."""
    check_positive_int(
        "make_blobs", n_samples=n_samples, centers=centers, n_features=n_features
    )
    rng = np.random.default_rng(seed)
    means = rng.uniform(-10.0, 10.0, (centers, n_features))
    y = np.arange(n_samples) % centers
    X = means[y] + rng.normal(0.0, std, (n_samples, n_features))
    order = rng.permutation(n_samples)
    return X[order], y[order].astype(np.int64)


def make_spirals(
    n_samples: int = 300, classes: int = 3, noise: float = 0.2, seed: int | None = None
):
    """Interleaved spirals (the cs231n data set): X (n, 2), y (n,) int64."""
    check_positive_int("make_spirals", n_samples=n_samples, classes=classes)
    rng = np.random.default_rng(seed)
    y = np.arange(n_samples) % classes
    r = rng.uniform(0.0, 1.0, n_samples)
    theta = y * (2 * np.pi / classes) + r * 4.0 + rng.normal(0.0, noise, n_samples)
    X = np.column_stack([r * np.sin(theta), r * np.cos(theta)])
    return X, y.astype(np.int64)


def make_correlated(
    n_samples: int = 500,
    n_features: int = 8,
    n_latent: int = 2,
    noise: float = 0.05,
    seed: int | None = None,
) -> np.ndarray:
    """Data near an n_latent-dimensional curved surface in [0, 1]^n_features:
    X (n, n_features) = sigmoid(latent @ mixing) + noise. An autoencoder with
    a bottleneck of n_latent units can reconstruct it well."""
    check_positive_int(
        "make_correlated", n_samples=n_samples, n_features=n_features, n_latent=n_latent
    )
    check_in_range("make_correlated", "noise", noise, 0.0, np.inf)
    rng = np.random.default_rng(seed)
    latent = rng.normal(0.0, 1.0, (n_samples, n_latent))
    mixing = rng.normal(0.0, 1.5, (n_latent, n_features))
    X = 1.0 / (1.0 + np.exp(-latent @ mixing)) + rng.normal(
        0.0, noise, (n_samples, n_features)
    )
    return X


LETTER_CLASSES = ("O", "X")


def _letter(letter: int, h: int, w: int, rounded: bool) -> np.ndarray:
    """A clean h x w stroke mask of "O" (letter 0) or "X" (letter 1)."""
    mask = np.zeros((h, w), dtype=bool)
    if letter == 0:  # the outline of a box, its corners cut for a rounder O
        mask[[0, -1], :] = True
        mask[:, [0, -1]] = True
        if rounded:
            mask[[0, 0, -1, -1], [0, -1, 0, -1]] = False
    else:  # both diagonals of the box
        rows = np.arange(h)
        left = np.rint(rows * (w - 1) / (h - 1)).astype(int)
        mask[rows, left] = True
        mask[rows, w - 1 - left] = True
    return mask


def make_letters(
    n_samples: int = 200,
    noise: float = 0.1,
    *,
    one_hot: bool = False,
    seed: int | None = None,
):
    """6x6 images of the letters O and X: X (n, 1, 6, 6) float64 in [0, 1], y.

    y is (n,) int64 with 0 = "O" and 1 = "X" (LETTER_CLASSES), or with
    one_hot=True (n, 2) float64 rows [1, 0] for O and [0, 1] for X. The classes
    alternate before shuffling, so they are balanced to within one sample.
    Each letter is drawn in a box of 4 to 6 pixels a side at a random place in
    the image (an O's corners are cut half the time, an X's diagonals follow
    its box), each stroke pixel has its own brightness in [0.6, 1], and
    Gaussian noise of standard deviation `noise` is added before clipping to
    [0, 1]. The shape is channels-first, ready for Conv2D(1, ...).
    """
    check_positive_int("make_letters", n_samples=n_samples)
    check_in_range("make_letters", "noise", noise, 0.0, np.inf)
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n_samples) % 2)
    X = np.zeros((n_samples, 1, 6, 6))
    for n, letter in enumerate(y):
        h, w = rng.integers(5, 7, size=2)
        if letter == 1:
            w = h  # an X in a square box keeps straight diagonals
        top, left = rng.integers(0, 7 - h), rng.integers(0, 7 - w)
        mask = _letter(int(letter), int(h), int(w), rounded=bool(rng.random() < 0.5))
        brightness = rng.uniform(0.6, 1.0, size=(h, w))
        X[n, 0, top : top + h, left : left + w] = np.where(mask, brightness, 0.0)
    if noise:
        X = np.clip(X + rng.normal(0.0, noise, X.shape), 0.0, 1.0)
    if one_hot:
        return X, np.eye(2)[y]
    return X, y.astype(np.int64)


SIGNAL_CLASSES = ("sine", "square", "sawtooth", "bursts")


def make_signals(
    n_samples: int = 800,
    length: int = 64,
    *,
    noise: float = 0.25,
    seed: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Noisy 1-D signals of four kinds: X (n, 1, length) float64, y (n,) int64.

    y indexes SIGNAL_CLASSES: 0 sine, 1 square, 2 sawtooth wave, each with 2 to 6
    cycles over the signal and a random phase; 3 noise bursts, one to three
    stretches of Gaussian noise (length // 8 to length // 4 long) in silence.
    Each signal has a random amplitude in [0.5, 1] and Gaussian noise of standard
    deviation `noise` on top. The classes alternate before shuffling, so they are
    balanced to within one sample. The shape is channels-first, ready for
    Conv1D(1, ...).
    """
    check_positive_int("make_signals", n_samples=n_samples)
    check_positive_int("make_signals", length=length)
    if length < 8:
        raise ConfigError(f"make_signals: length must be at least 8, got {length}")
    check_in_range("make_signals", "noise", noise, 0.0, np.inf)
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n_samples) % len(SIGNAL_CLASSES))
    t = np.arange(length) / length  # (length,) in [0, 1)
    X = np.zeros((n_samples, 1, length))
    for n, kind in enumerate(y):
        cycles = rng.uniform(2.0, 6.0) * t + rng.random()  # (length,) phase, in turns
        if kind == 0:
            wave = np.sin(2 * np.pi * cycles)
        elif kind == 1:
            wave = np.where(cycles % 1.0 < 0.5, 1.0, -1.0)
        elif kind == 2:
            wave = 2.0 * (cycles % 1.0) - 1.0
        else:
            wave = np.zeros(length)
            for _ in range(rng.integers(1, 4)):
                width = int(rng.integers(length // 8, length // 4 + 1))
                start = int(rng.integers(0, length - width + 1))
                wave[start : start + width] = rng.normal(0.0, 1.0, width)
        X[n, 0] = rng.uniform(0.5, 1.0) * wave
    X += rng.normal(0.0, noise, X.shape) if noise else 0.0
    return X, y.astype(np.int64)


def pattern_occurs(X: np.ndarray, pattern) -> np.ndarray:
    """(n,) booleans: whether the contiguous run of token ids `pattern` occurs
    in each row of X (n, length)."""
    X, k = np.asarray(X), len(pattern)
    starts = X.shape[1] - k + 1
    hit = np.ones((X.shape[0], max(starts, 0)), dtype=bool)  # (n, starts)
    for j, token in enumerate(pattern):
        hit &= X[:, j : j + starts] == token
    return hit.any(axis=1)


def make_sequences(
    n_samples: int = 1000,
    length: int = 30,
    *,
    vocab: int = 4,
    pattern=(0, 1),
    seed: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Token sequences labelled by whether a pattern occurs: X (n, length) int64
    ids in [0, vocab), y (n,) int64, 1 when the ids `pattern` appear
    consecutively somewhere in the row (pattern_occurs), balanced classes.

    The answer depends on order, not on which tokens occur: (0, 1) and (1, 0)
    contain the same ids. A recurrent network carries "the last token was 0"
    from step to step; a network on the flattened ids must learn the pattern
    at every position separately, and with a few thousand rows it memorises
    the training rows instead (examples/sequence_gru.py compares the two).
    Rows of class 0 have every occurrence removed (its last token replaced);
    rows of class 1 get the pattern written at a random position.
    Feed X to an Embedding(vocab, ...) first.
    """
    check_positive_int("make_sequences", n_samples=n_samples, length=length)
    check_positive_int("make_sequences", vocab=vocab)
    pattern = tuple(int(t) for t in pattern)
    k = len(pattern)
    if vocab < 2 or not 1 <= k <= length or not all(0 <= t < vocab for t in pattern):
        raise ConfigError(
            f"make_sequences: pattern must be 1 to length ({length}) token ids in "
            f"[0, vocab), vocab >= 2; got pattern={pattern}, vocab={vocab}"
        )
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n_samples) % 2)
    X = rng.integers(0, vocab, (n_samples, length))
    # Remove every occurrence by changing its last token. A change can complete a
    # new occurrence only further right, so at most `length` passes are needed.
    for _ in range(length):
        hit = np.ones((n_samples, length - k + 1), dtype=bool)
        for j, token in enumerate(pattern):
            hit &= X[:, j : j + length - k + 1] == token
        rows, starts = np.nonzero(hit)
        if not rows.size:
            break
        other = (pattern[-1] + rng.integers(1, vocab, rows.size)) % vocab
        X[rows, starts + k - 1] = other  # any token but the pattern's last
    ones = np.flatnonzero(y)
    starts = rng.integers(0, length - k + 1, ones.size)
    for j, token in enumerate(pattern):
        X[ones, starts + j] = token
    return X.astype(np.int64), y.astype(np.int64)


ARITHMETIC_VOCAB = "0123456789+="


def make_arithmetic(
    n_samples: int = 1000, *, digits: int = 2, seed: int | None = None
) -> list[str]:
    """Addition problems with their answers, for character-level models:
    n_samples strings such as "07+85=092", two random operands of `digits`
    digits and their sum, in fixed width (operands zero-padded to `digits`
    characters, the sum to digits + 1), so every answer digit sits at the same
    position. Characters come from ARITHMETIC_VOCAB ("0123456789+="); map them
    to ids with ARITHMETIC_VOCAB.index and feed them to an Embedding(12, ...).

    A sample's correctness can be measured: check_arithmetic(text) says
    whether the part after "=" is the sum of the two operands.
    examples/arithmetic_transformer.py trains a small TransformerBlock stack on
    them and reports the fraction of correct answers on problems it never saw.
    """
    check_positive_int("make_arithmetic", n_samples=n_samples, digits=digits)
    if digits > 9:
        raise ConfigError(
            f"make_arithmetic: digits must be 1 to 9 (int64 sums), got {digits}"
        )
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 10**digits, (2, n_samples))  # (n,) each
    return [
        f"{x:0{digits}d}+{y:0{digits}d}={x + y:0{digits + 1}d}"
        for x, y in zip(a.tolist(), b.tolist(), strict=True)
    ]


def check_arithmetic(text: str) -> bool:
    """True when text reads "A+B=C" with digits only and C == A + B.

    Leading zeros are allowed, as make_arithmetic writes them; anything else
    (a missing "+" or "=", a stray character, an empty part) is False.
    """
    left, eq, answer = text.partition("=")
    a, plus, b = left.partition("+")
    parts = (a, b, answer)
    if not (eq and plus and all(p.isascii() and p.isdigit() for p in parts)):
        return False
    return int(a) + int(b) == int(answer)


def load_digits(*, images: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The 8x8 handwritten digits that scikit-learn ships (UCI optical digits).

    Returns X (1797, 1, 8, 8) float64 in [0, 1] (grey levels 0..16 divided by
    16), channels-first for Conv2D, or (1797, 64) with images=False; and
    y (1797,) int64 in 0..9. Needs the optional extra: pip install "glassnet[sklearn]".
    """
    try:
        from sklearn.datasets import load_digits as sklearn_load_digits
    except ImportError:
        raise MissingDependencyError(
            "load_digits needs scikit-learn, which ships the digits; install it with "
            "pip install 'glassnet[sklearn]' (or pip install scikit-learn)"
        ) from None
    bunch = sklearn_load_digits()
    X = np.asarray(bunch.data, dtype=np.float64) / 16.0  # (1797, 64)
    y = np.asarray(bunch.target, dtype=np.int64)
    return (X.reshape(-1, 1, 8, 8) if images else X), y


def train_test_split(
    X, y, test_size: float = 0.25, *, stratify: bool = True, rng=None, seed=None
):
    """Split (X, y) into (X_train, X_test, y_train, y_test) with a private generator.

    With integer labels y (N,) and stratify=True, each class keeps its proportion
    (at least one test row per class with two or more rows). Global random state is
    never used: pass rng (a np.random.Generator) or seed.
    """
    check_in_range("train_test_split", "test_size", test_size, 1e-12, 1.0)
    rng = rng if rng is not None else np.random.default_rng(seed)
    y = np.asarray(y)
    N = len(y)
    if stratify and y.ndim == 1 and not np.issubdtype(y.dtype, np.floating):
        test = []
        # return_counts: NumPy's plain unique() imports numpy.ma (6 ms of every
        # `glassnet train` process, 5 % of a 500-epoch Iris fit)
        classes, _ = np.unique(y, return_counts=True)
        for c in classes:
            rows = np.flatnonzero(y == c)
            rows = rows[rng.permutation(len(rows))]
            n_test = int(round(test_size * len(rows)))
            if len(rows) > 1:
                n_test = min(max(n_test, 1), len(rows) - 1)
            test.append(rows[:n_test])
        test_idx = np.sort(np.concatenate(test))
    else:
        n_test = max(1, int(round(test_size * N)))
        test_idx = np.sort(rng.permutation(N)[:n_test])
    mask = np.ones(N, dtype=bool)
    mask[test_idx] = False
    train_idx = np.flatnonzero(mask)
    X = np.asarray(X)
    return X[train_idx], X[test_idx], y[train_idx], y[test_idx]


__all__ = [
    "ARITHMETIC_VOCAB",
    "IRIS_CLASSES",
    "IRIS_FEATURES",
    "LETTER_CLASSES",
    "SIGNAL_CLASSES",
    "check_arithmetic",
    "load_digits",
    "load_iris",
    "make_blobs",
    "make_correlated",
    "make_letters",
    "make_arithmetic",
    "make_sequences",
    "make_signals",
    "make_spirals",
    "make_xor",
    "pattern_occurs",
    "train_test_split",
]
