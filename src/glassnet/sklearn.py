"""scikit-learn estimators: GlassClassifier and GlassRegressor (the [sklearn] extra).

    from glassnet.sklearn import GlassClassifier

    clf = GlassClassifier(hidden_layer_sizes=(16,), epochs=100, random_state=0)
    clf.fit(X, y)                  # y: any labels (ints, strings, ...)
    clf.predict_proba(X)           # (N, K), columns in clf.classes_ order

They follow scikit-learn's estimator contract (clone, get_params/set_params,
Pipeline, GridSearchCV, partial_fit, warm_start) and pass its
`parametrize_with_checks`. Inside, each is a glassnet Sequential (`model_`)
trained by glassnet's own fit, in float64, with a private random generator:
NumPy's global random state is never read or written.

scikit-learn is imported here only, so `import glassnet` does not need it.
"""

import copy
import numbers

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "glassnet.sklearn needs scikit-learn; install it with "
        "pip install 'glassnet[sklearn]'"
    ) from exc

from glassnet.errors import ArgumentTypeError, ConfigError, DataError
from glassnet.nn.layers.activations import ACTIVATIONS
from glassnet.nn.layers.base import Layer
from glassnet.nn.layers.containers import Sequential
from glassnet.nn.losses import loss_name
from glassnet.train.callbacks import EarlyStopping
from glassnet.train.loop import final_activation
from glassnet.train.loop import fit as _fit
from glassnet.train.optimizers import OPTIMIZERS, Optimizer

__all__ = ["GlassClassifier", "GlassRegressor"]


def _seed_from(random_state) -> int | None:
    """An int seed for Sequential from scikit-learn's random_state convention.

    None gives fresh OS entropy (not NumPy's global generator); a RandomState or
    Generator instance is drawn from once, as scikit-learn estimators do.
    """
    if random_state is None:
        return None
    if isinstance(random_state, numbers.Integral) and not isinstance(
        random_state, bool
    ):
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(np.iinfo(np.int32).max))
    raise ConfigError(
        f"random_state must be None, an int, a RandomState or a Generator, "
        f"got {random_state!r}"
    )


class _GlassEstimator(BaseEstimator):
    """Hyperparameters, validation and the training loop shared by both estimators.

    Subclasses define _prepare_targets, _n_outputs and _loss_name.
    """

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation: str = "relu",
        optimizer="adam",
        learning_rate: float = 1e-3,
        batch_size: int | None = 32,
        epochs: int = 200,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        patience: int = 10,
        random_state=None,
        verbose: int = 0,
        warm_start: bool = False,
        layers=None,
    ) -> None:
        # scikit-learn's contract: store the arguments untouched, validate in fit
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.layers = layers

    # -- validation -------------------------------------------------------------

    def _check_params(self) -> tuple[int, ...]:
        """Raise ConfigError naming the first bad hyperparameter; return the sizes."""
        name = type(self).__name__
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
            sizes = (sizes,)
        try:
            sizes = tuple(sizes)
        except TypeError:
            raise ConfigError(
                f"{name}: hidden_layer_sizes must be a tuple of positive ints, "
                f"got {self.hidden_layer_sizes!r}"
            ) from None
        if not all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1
            for s in sizes
        ):
            raise ConfigError(
                f"{name}: hidden_layer_sizes must be a tuple of positive ints, "
                f"got {self.hidden_layer_sizes!r}"
            )
        if self.activation not in ACTIVATIONS or self.activation == "softmax":
            known = ", ".join(sorted(set(ACTIVATIONS) - {"softmax"}))
            raise ConfigError(
                f"{name}: activation must be one of {known}, got {self.activation!r}"
            )
        known_optimizers = isinstance(self.optimizer, str) and (
            self.optimizer.lower() in OPTIMIZERS
        )
        if not (known_optimizers or isinstance(self.optimizer, Optimizer)):
            known = ", ".join(sorted(OPTIMIZERS))
            raise ConfigError(
                f"{name}: optimizer must be one of {known} or a glassnet Optimizer, "
                f"got {self.optimizer!r}"
            )
        checks = [
            ("learning_rate", self.learning_rate, numbers.Real, 0.0),
            ("epochs", self.epochs, numbers.Integral, 1),
            ("patience", self.patience, numbers.Integral, 1),
        ]
        if self.batch_size is not None:
            checks.append(("batch_size", self.batch_size, numbers.Integral, 1))
        for arg, value, kind, low in checks:
            ok = isinstance(value, kind) and not isinstance(value, bool)
            if not ok or not (value > low if kind is numbers.Real else value >= low):
                relation = f"> {low}" if kind is numbers.Real else f">= {low}"
                raise ConfigError(
                    f"{name}: {arg} must be a number {relation}, got {value!r}"
                )
        fraction = self.validation_fraction
        if not (isinstance(fraction, numbers.Real) and 0.0 < fraction < 1.0):
            raise ConfigError(
                f"{name}: validation_fraction must lie in (0, 1), got {fraction!r}"
            )
        if self.verbose not in (0, 1, 2, True, False):
            raise ConfigError(
                f"{name}: verbose must be 0, 1 or 2, got {self.verbose!r}"
            )
        if self.layers is not None and not callable(self.layers):
            raise ConfigError(
                f"{name}: layers must be None or a function "
                f"(input_shape, n_outputs) -> list of layers, got {self.layers!r}"
            )
        return sizes

    def _validate(self, X, y="no_validation", *, reset: bool):
        """scikit-learn's validate_data (X alone, or X and y when y is given, even
        None), its errors re-raised as glassnet errors (still ValueError /
        TypeError) with the same message."""
        kwargs = {"dtype": np.float64, "allow_nd": self.layers is not None}
        if not (isinstance(y, str) and y == "no_validation"):
            kwargs.update(self._y_options())
        try:
            return validate_data(self, X, y, reset=reset, **kwargs)
        except ValueError as exc:
            raise DataError(f"{type(self).__name__}: {exc}") from None
        except TypeError as exc:
            raise ArgumentTypeError(f"{type(self).__name__}: {exc}") from None

    # -- building and training ---------------------------------------------------

    def _build(self, sizes: tuple[int, ...], input_shape: tuple, n_outputs: int):
        seed = _seed_from(self.random_state)
        if self.layers is None:
            widths = [input_shape[0], *sizes, n_outputs]
            activations = [self.activation] * len(sizes) + ["linear"]
            model = Sequential.from_sizes(
                widths, activations, seed=seed, dtype=np.float64
            )
        else:
            built = self.layers(tuple(input_shape), n_outputs)
            if isinstance(built, Sequential):
                built = built.layers
            elif isinstance(built, Layer):  # one layer, e.g. a Residual or Concat
                built = [built]
            if not isinstance(built, (list, tuple)):
                raise ConfigError(
                    f"{type(self).__name__}: layers(input_shape, n_outputs) must "
                    f"return a list of layers, a Sequential or one layer, got "
                    f"{built!r}"
                )
            # a fresh Sequential re-initialises every layer from random_state
            model = Sequential(*built, seed=seed, dtype=np.float64)
        if isinstance(self.optimizer, Optimizer):
            optimizer = copy.deepcopy(
                self.optimizer
            )  # never train the parameter itself
        else:
            optimizer = OPTIMIZERS[self.optimizer.lower()](lr=self.learning_rate)
        self.model_, self.optimizer_ = model, optimizer
        self.loss_ = self._loss_name(model, n_outputs)
        self.history_ = {}
        self.n_iter_ = 0

    def _train(self, X, targets, epochs: int, early_stopping: bool) -> None:
        callbacks = []
        if early_stopping:
            callbacks.append(
                EarlyStopping("val_loss", self.patience, restore_best_weights=True)
            )
        history = _fit(
            self.model_,
            X,
            targets,
            loss=self.loss_,
            optimizer=self.optimizer_,
            epochs=epochs,
            batch_size=self.batch_size,
            validation_split=self.validation_fraction if early_stopping else 0.0,
            callbacks=callbacks,
            verbose=int(self.verbose),
        )
        for key, values in history.history.items():
            self.history_.setdefault(key, []).extend(values)
        self.n_iter_ += len(history)

    def _fit(self, X, y, *, partial: bool, classes=None):
        sizes = self._check_params()
        fitted = hasattr(self, "model_")
        keep = fitted and (partial or self.warm_start)
        X, y = self._validate(X, y, reset=not keep)
        targets, n_outputs = self._prepare_targets(y, keep, partial, classes)
        if not keep:
            self._build(sizes, X.shape[1:], n_outputs)
        if partial:
            self._train(X, targets, 1, early_stopping=False)
        else:
            self._train(X, targets, self.epochs, early_stopping=self.early_stopping)
        return self

    # -- the estimator API ---------------------------------------------------------

    @property
    def loss_curve_(self) -> list[float]:
        """Mean training loss of every epoch so far (as MLPClassifier's)."""
        check_is_fitted(self)
        return list(self.history_.get("loss", []))

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    def _checked_input(self, X) -> np.ndarray:
        check_is_fitted(self)
        return self._validate(X, reset=False)


class GlassClassifier(ClassifierMixin, _GlassEstimator):
    """A glassnet network as a scikit-learn classifier.

    The default network is an MLP: Dense layers of hidden_layer_sizes with
    `activation` between them, and a linear output of K logits (one logit for
    two classes), trained on softmax (or sigmoid) cross-entropy.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default (100,)
        Width of each hidden Dense layer.
    activation : {"relu", "tanh", "sigmoid", "leaky_relu", "identity"}
    optimizer : {"adam", "sgd", "rmsprop", "adamw"} or a glassnet Optimizer
        A name is built with lr=learning_rate; an instance is copied at each
        fresh fit and used with its own settings.
    learning_rate : float, default 1e-3
    batch_size : int or None, default 32
        Rows per step; None trains on the whole data set at once.
    epochs : int, default 200
        Passes over the data in `fit` (partial_fit always does one).
    early_stopping : bool, default False
        Hold out validation_fraction of the rows (stratified) and stop once the
        validation loss has not improved for `patience` epochs, keeping the
        weights of the best epoch.
    validation_fraction : float, default 0.1
    patience : int, default 10
    random_state : None, int, RandomState or Generator
        Seeds the weights, the shuffling and the validation split.
    verbose : 0, 1 or 2
        0 silent; 1 a progress bar with loss and accuracy, on a terminal only;
        2 one line per epoch on stderr.
    warm_start : bool, default False
        If True, `fit` continues from the previous weights and optimizer state.
    layers : callable or None
        layers(input_shape, n_outputs) returning a list of glassnet layers (or a
        Sequential, or one layer such as a Residual; layers may hold layers) for
        any architecture; it replaces hidden_layer_sizes and
        activation. input_shape is one sample's shape, X.shape[1:]; the network
        must output n_outputs logits (K, or 1 for two classes), or end in
        Softmax / Sigmoid. With `layers`, X may have more than two dimensions.

    Attributes
    ----------
    classes_ : ndarray (K,)      the labels, sorted; predict_proba's column order
    n_features_in_ : int
    model_ : glassnet.Sequential
    optimizer_ : glassnet.Optimizer (its state carries over in partial_fit)
    history_ : dict of lists     per-epoch "loss", "accuracy" (and "val_...")
    loss_curve_ : list of float
    n_iter_ : int                epochs trained so far
    """

    def _y_options(self) -> dict:
        return {"multi_output": False}

    def _prepare_targets(self, y, keep: bool, partial: bool, classes):
        name = type(self).__name__
        try:
            check_classification_targets(y)
        except ValueError as exc:
            raise DataError(f"{name}: {exc}") from None
        if keep:
            if classes is not None and not np.array_equal(
                np.unique(classes), self.classes_
            ):
                raise DataError(
                    f"{name}.partial_fit: classes={list(classes)} differ from the "
                    f"classes of the first call, {list(self.classes_)}"
                )
        elif classes is not None:
            self.classes_ = np.unique(classes)
        elif partial:
            raise ConfigError(
                f"{name}.partial_fit: pass classes=... (every label that will ever "
                "occur) on the first call"
            )
        else:
            self.classes_ = np.unique(y)
        unknown = np.setdiff1d(y, self.classes_)
        if unknown.size:
            raise DataError(
                f"{name}: y contains labels {list(unknown)} not among the classes "
                f"{list(self.classes_)} of the first fit (warm_start / partial_fit)"
            )
        K = len(self.classes_)
        if K < 2:
            raise DataError(
                f"{name}: a classifier needs at least 2 classes, got only one class "
                f"{list(self.classes_)}"
            )
        labels = np.searchsorted(self.classes_, y)  # (N,) ints in [0, K)
        return labels, (1 if K == 2 else K)

    @staticmethod
    def _loss_name(model, n_outputs: int) -> str:
        """The cross-entropy for what the model outputs: probabilities after a final
        Softmax / Sigmoid, logits otherwise (sigmoid for one output)."""
        activation = final_activation(model)
        if activation is not None:
            return loss_name("probabilities", activation)
        return loss_name("logits", "sigmoid" if n_outputs == 1 else "softmax")

    def fit(self, X, y) -> "GlassClassifier":
        """Train on X (N, D) and labels y (N,); returns self."""
        return self._fit(X, y, partial=False)

    def partial_fit(self, X, y, classes=None) -> "GlassClassifier":
        """One epoch on (X, y), continuing from the current weights and optimizer
        state. classes (every label that will occur) is required on the first call."""
        return self._fit(X, y, partial=True, classes=classes)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (N, K), columns in classes_ order, rows summing to 1."""
        X = self._checked_input(X)
        return self.model_.predict_proba(X)

    def predict_log_proba(self, X) -> np.ndarray:
        """log(predict_proba(X)), (N, K)."""
        with np.errstate(divide="ignore"):  # a probability of exactly 0 gives -inf
            return np.log(self.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        """The most probable label of each row, (N,), taken from classes_."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


class GlassRegressor(RegressorMixin, _GlassEstimator):
    """A glassnet network as a scikit-learn regressor (one or several targets).

    The default network is an MLP with a linear output of one unit per target,
    trained on mean squared error. Parameters and attributes are those of
    GlassClassifier (no classes_); `layers(input_shape, n_outputs)` must output
    n_outputs values per row. y may be (N,) or (N, T); predict returns the same.
    """

    def _y_options(self) -> dict:
        return {"multi_output": True, "y_numeric": True}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _prepare_targets(self, y, keep: bool, partial: bool, classes):
        y = np.asarray(y, dtype=np.float64)
        targets = y.reshape(len(y), -1)  # (N,) -> (N, 1); (N, T) stays
        if keep and targets.shape[1] != self.n_outputs_:
            raise DataError(
                f"{type(self).__name__}: y has {targets.shape[1]} targets per row, "
                f"the model was fitted with {self.n_outputs_}"
            )
        if not keep:
            self.n_outputs_, self._y_1d = targets.shape[1], y.ndim == 1
        return targets, targets.shape[1]

    @staticmethod
    def _loss_name(model, n_outputs: int) -> str:
        return "mse"

    def fit(self, X, y) -> "GlassRegressor":
        """Train on X (N, D) and targets y (N,) or (N, T); returns self."""
        return self._fit(X, y, partial=False)

    def partial_fit(self, X, y) -> "GlassRegressor":
        """One epoch on (X, y), continuing from the current weights and optimizer
        state (the first call builds the network)."""
        return self._fit(X, y, partial=True)

    def predict(self, X) -> np.ndarray:
        """Predicted targets: (N,) if fitted on y (N,), else (N, T)."""
        X = self._checked_input(X)
        out = self.model_.predict(X)  # (N, T)
        return out.ravel() if self._y_1d else out
