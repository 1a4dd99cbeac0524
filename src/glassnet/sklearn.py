"""scikit-learn estimators: GlassClassifier and GlassRegressor (the [sklearn] extra).

    from glassnet.sklearn import GlassClassifier

    clf = GlassClassifier(hidden_layer_sizes=(16,), epochs=100, random_state=0)
    clf.fit(X, y)                  # y: any labels (ints, strings, ...)
    clf.predict_proba(X)           # (N, K), columns in clf.classes_ order

They follow scikit-learn's estimator contract (clone, get_params/set_params,
Pipeline, GridSearchCV, partial_fit, warm_start, sample_weight) and pass its
`parametrize_with_checks`. Inside, each is a glassnet Sequential (`model_`)
trained by glassnet's own fit, in float64 (or dtype="float32"), with a private
random generator: NumPy's global random state is never read or written.

Saving: `clf.save("clf.safetensors")` and `GlassClassifier.load(...)` use
glassnet's safe format (safetensors + JSON: weights, architecture, classes_,
hyperparameters, history; nothing in the file is imported or executed).
Pickling works too, but unpickling runs code named in the file: unpickle only
files you trust.

scikit-learn is imported here only, so `import glassnet` does not need it.
"""

import copy
import numbers
import os

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.utils.class_weight import compute_sample_weight
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import (
        _check_sample_weight,
        check_is_fitted,
        validate_data,
    )
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
from glassnet.train.callbacks import Callback, EarlyStopping
from glassnet.train.loop import final_activation
from glassnet.train.loop import fit as _fit
from glassnet.train.optimizers import OPTIMIZERS, Optimizer

__all__ = ["GlassClassifier", "GlassRegressor"]

_LABEL_KINDS = {"i": "int64", "u": "int64", "b": "bool", "f": "float64", "U": "str"}


def _json_labels(labels, what: str) -> list:
    """Class labels as JSON values (int, float, bool or str), else ConfigError."""
    out = []
    for label in labels:
        if isinstance(label, (np.generic,)):
            label = label.item()
        if not isinstance(label, (bool, int, float, str)):
            raise ConfigError(
                f"save: {what} holds the label {label!r} of type "
                f"{type(label).__name__}; the safe format stores ints, floats, "
                "bools and strings (pickle the estimator instead)"
            )
        out.append(label)
    return out


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


class _ScikitL2(Callback):
    """alpha, scikit-learn's MLP convention, on glassnet's own per-layer penalty:
    the objective of a batch of B rows is its mean loss + alpha / (2 B) * (sum of
    the squared weights of the Dense and Conv layers; biases are not penalised),
    so each such layer's l2 is set to alpha / (2 B) before every batch. The
    penalty's gradient then comes from the layers' own backward and its value
    joins the logged loss, as in scikit-learn's loss_curve_."""

    def __init__(self, layers: list, alpha: float) -> None:
        self.layers, self.alpha = layers, float(alpha)

    def on_batch_begin(self, batch: int, logs: dict) -> None:
        l2 = self.alpha / (2.0 * logs["size"])
        for layer in self.layers:
            layer.l2 = l2


_DTYPES = ("float32", "float64")


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
        alpha: float = 0.0,
        dtype="float64",
    ) -> None:
        # scikit-learn's contract: store the arguments untouched, validate in fit
        self.alpha = alpha
        self.dtype = dtype
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
        alpha = self.alpha
        if not (
            isinstance(alpha, numbers.Real)
            and not isinstance(alpha, bool)
            and 0.0 <= alpha < float("inf")
        ):
            raise ConfigError(f"{name}: alpha must be a number >= 0, got {alpha!r}")
        try:
            dtype_ok = np.dtype(self.dtype).name in _DTYPES
        except TypeError:
            dtype_ok = False
        if not dtype_ok:
            raise ConfigError(
                f"{name}: dtype must be 'float32' or 'float64', got {self.dtype!r}"
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
        allow_nd = self.layers is not None or getattr(self, "_custom_layers", False)
        kwargs = {"dtype": self._dtype(), "allow_nd": allow_nd}
        if not (isinstance(y, str) and y == "no_validation"):
            kwargs.update(self._y_options())
        try:
            return validate_data(self, X, y, reset=reset, **kwargs)
        except ValueError as exc:
            raise DataError(f"{type(self).__name__}: {exc}") from None
        except TypeError as exc:
            raise ArgumentTypeError(f"{type(self).__name__}: {exc}") from None

    def _dtype(self):
        try:
            return (
                np.dtype(self.dtype) if np.dtype(self.dtype).name in _DTYPES else None
            )
        except TypeError:
            return None  # _check_params names it

    def _weights(self, sample_weight, X, y):
        """The rows' weights (N,) float, or None: sample_weight (scikit-learn's
        convention: non-negative, not all zero) times the class weights."""
        name = type(self).__name__
        weights = None
        if sample_weight is not None:
            try:
                weights = _check_sample_weight(
                    sample_weight, X, dtype=np.float64, ensure_non_negative=True
                )
            except ValueError as exc:
                raise DataError(f"{name}: sample_weight: {exc}") from None
            except TypeError as exc:
                raise ArgumentTypeError(f"{name}: sample_weight: {exc}") from None
        class_weight = getattr(self, "class_weight", None)
        if class_weight is not None:
            try:
                per_row = compute_sample_weight(class_weight, y)
            except ValueError as exc:
                raise ConfigError(f"{name}: class_weight: {exc}") from None
            weights = per_row if weights is None else weights * per_row
        if weights is not None and not np.any(weights > 0):
            raise DataError(
                f"{name}: sample_weight is zero for every row (with class_weight "
                "applied); at least one row needs a positive weight"
            )
        return weights

    # -- building and training ---------------------------------------------------

    def _build(self, sizes: tuple[int, ...], input_shape: tuple, n_outputs: int):
        seed = _seed_from(self.random_state)
        if self.layers is None:
            widths = [input_shape[0], *sizes, n_outputs]
            activations = [self.activation] * len(sizes) + ["linear"]
            model = Sequential.from_sizes(
                widths, activations, seed=seed, dtype=self._dtype()
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
            model = Sequential(*built, seed=seed, dtype=self._dtype())
            self._check_width(model, input_shape, n_outputs)
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

    def _check_width(self, model, input_shape: tuple, n_outputs: int) -> None:
        """ConfigError when a layers= network's output width is not n_outputs."""
        name = type(self).__name__
        probe = np.zeros((1, *input_shape), dtype=self._dtype())
        try:
            width = model.predict(probe).reshape(1, -1).shape[1]  # (1, ...) -> (1, W)
        except Exception as exc:  # the factory's network does not take X
            raise ConfigError(
                f"{name}: the network from layers(input_shape={tuple(input_shape)}, "
                f"n_outputs={n_outputs}) fails on one row: {exc}"
            ) from None
        if width != n_outputs:
            what = "targets" if isinstance(self, RegressorMixin) else "classes"
            raise ConfigError(
                f"{name}: the network from layers(input_shape, n_outputs="
                f"{n_outputs}) outputs {width} values per row, expected {n_outputs} "
                f"for the {what} of y; build the last layer with n_outputs"
                + (" (1 logit for 2 classes)" if n_outputs == 1 else "")
            )

    def _train(
        self, X, targets, epochs: int, early_stopping: bool, weights=None
    ) -> None:
        callbacks = []
        penalized = [
            layer for _, layer in self.model_.named_layers() if hasattr(layer, "l2")
        ]
        rows = len(X) if self.batch_size is None else min(self.batch_size, len(X))
        if self.alpha:  # set before fit, so that fit counts the penalty
            for layer in penalized:
                layer.l2 = self.alpha / (2.0 * rows)
            callbacks.append(_ScikitL2(penalized, self.alpha))
        elif getattr(self, "_alpha_was_set", False):  # a warm start without alpha
            for layer in penalized:
                layer.l2 = 0.0
        # a layers= network's own l2 options are left alone unless alpha is given
        self._alpha_was_set = bool(self.alpha)
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
            **({} if weights is None else {"sample_weight": weights}),
        )
        for key, values in history.history.items():
            self.history_.setdefault(key, []).extend(values)
        self.n_iter_ += len(history)

    def _fit(self, X, y, *, partial: bool, classes=None, sample_weight=None):
        sizes = self._check_params()
        fitted = hasattr(self, "model_")
        keep = fitted and (partial or self.warm_start)
        X, y = self._validate(X, y, reset=not keep)
        targets, n_outputs = self._prepare_targets(y, keep, partial, classes)
        weights = self._weights(sample_weight, X, y)
        if not keep:
            self._custom_layers = self.layers is not None
            self._build(sizes, X.shape[1:], n_outputs)
        if partial:
            self._train(X, targets, 1, early_stopping=False, weights=weights)
        else:
            self._train(X, targets, self.epochs, self.early_stopping, weights=weights)
        return self

    # -- the estimator API ---------------------------------------------------------

    @property
    def loss_curve_(self) -> list[float]:
        """Mean training loss of every epoch so far (as MLPClassifier's)."""
        check_is_fitted(self)
        return list(self.history_.get("loss", []))

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    # -- the safe file format ------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Write the fitted estimator to `path` in glassnet's safe format
        (safetensors + JSON): the network's architecture and weights, and as JSON
        the hyperparameters, classes_ / output shape, n_features_in_ and the
        history. Read it back with `type(self).load(path)`. Not saved: the
        optimizer's moments (warm_start after load starts them afresh), a layers=
        function (load(path, layers=...) gives it back for refitting), and a
        random_state or optimizer instance (saved as None / its name)."""
        from glassnet.io.serialization import save

        check_is_fitted(self)
        save(self.model_, path, extra={"estimator": self._state()})

    def _state(self) -> dict:
        params = self.get_params()
        params["layers"] = None
        params["dtype"] = np.dtype(self._dtype()).name
        if not isinstance(params["random_state"], numbers.Integral):
            params["random_state"] = None
        if isinstance(params["optimizer"], Optimizer):
            by_class = {cls: key for key, cls in OPTIMIZERS.items()}
            params["optimizer"] = by_class.get(type(params["optimizer"]), "adam")
        if params.get("class_weight") not in (None, "balanced"):
            params["class_weight"] = {
                "keys": _json_labels(list(params["class_weight"]), "class_weight"),
                "values": [float(v) for v in params["class_weight"].values()],
            }
        params["hidden_layer_sizes"] = list(np.atleast_1d(params["hidden_layer_sizes"]))
        params["hidden_layer_sizes"] = [int(v) for v in params["hidden_layer_sizes"]]
        state = {
            "class": type(self).__name__,
            "params": params,
            "custom_layers": bool(getattr(self, "_custom_layers", False)),
            "n_features_in": int(self.n_features_in_),
            "loss": self.loss_,
            "n_iter": int(self.n_iter_),
            "history": {k: [float(v) for v in vs] for k, vs in self.history_.items()},
        }
        if hasattr(self, "feature_names_in_"):
            state["feature_names_in"] = [str(v) for v in self.feature_names_in_]
        state.update(self._target_state())
        return state

    @classmethod
    def load(cls, path: str | os.PathLike, *, layers=None):
        """The estimator saved at `path` by save(), ready to predict and score.

        layers: the layers= function it was fitted with, if any (needed only to
        fit it again; predict uses the saved network). Raises ModelFileError for
        a file that is not a saved estimator of this class.
        """
        from glassnet.errors import ModelFileError
        from glassnet.io.serialization import load, read_extra

        state = read_extra(path).get("estimator")
        if not isinstance(state, dict) or state.get("class") != cls.__name__:
            found = state.get("class") if isinstance(state, dict) else None
            raise ModelFileError(
                path,
                f"is not a saved {cls.__name__} (holds "
                + (f"a {found})" if found else "a plain glassnet model; use gn.load)"),
            )
        model = load(path)
        try:
            params = dict(state["params"])
            if isinstance(params.get("class_weight"), dict):
                cw = params["class_weight"]
                params["class_weight"] = dict(
                    zip(cw["keys"], cw["values"], strict=True)
                )
            params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
            est = cls(**{**params, "layers": layers})
            est.model_ = model
            est._custom_layers = bool(state["custom_layers"])
            est.n_features_in_ = int(state["n_features_in"])
            est.loss_ = str(state["loss"])
            est.n_iter_ = int(state["n_iter"])
            est.history_ = {k: list(v) for k, v in state["history"].items()}
            if "feature_names_in" in state:
                est.feature_names_in_ = np.asarray(state["feature_names_in"], object)
            est._restore_target_state(state)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(
                path, f"has estimator metadata that is incomplete or wrong ({exc})"
            ) from None
        if isinstance(est.optimizer, Optimizer):  # pragma: no cover - saved as name
            est.optimizer_ = copy.deepcopy(est.optimizer)
        else:
            est.optimizer_ = OPTIMIZERS[est.optimizer.lower()](lr=est.learning_rate)
        return est

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
        Softmax / Sigmoid; another output width is a ConfigError at fit. With
        `layers`, X may have more than two dimensions.
    alpha : float, default 0.0
        L2 penalty, scikit-learn's MLP convention: each batch of B rows adds
        alpha / (2 B) * (sum of the squared weights of the Dense and Conv
        layers) to its loss (biases are not penalised), through the layers' own
        l2 option; the logged loss (history_, loss_curve_) includes it, as in
        scikit-learn.
    dtype : "float64" (default) or "float32"
        The network's parameters and the data it sees (float32 is faster).
    class_weight : dict, "balanced" or None
        Weights of the classes, multiplied into sample_weight: {label: weight},
        or "balanced" for n_samples / (n_classes * count of the class).

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
        alpha: float = 0.0,
        dtype="float64",
        class_weight=None,
    ) -> None:
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            optimizer=optimizer,
            learning_rate=learning_rate,
            batch_size=batch_size,
            epochs=epochs,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            patience=patience,
            random_state=random_state,
            verbose=verbose,
            warm_start=warm_start,
            layers=layers,
            alpha=alpha,
            dtype=dtype,
        )
        self.class_weight = class_weight

    def _y_options(self) -> dict:
        return {"multi_output": False}

    def _target_state(self) -> dict:
        kind = _LABEL_KINDS.get(self.classes_.dtype.kind, "str")
        if self.classes_.dtype.kind == "O":  # strings from a DataFrame, say
            kind = "object"
        return {
            "classes": _json_labels(self.classes_, "classes_"),
            "classes_dtype": kind,
        }

    def _restore_target_state(self, state: dict) -> None:
        kind = state["classes_dtype"]
        dtype = object if kind == "object" else kind
        self.classes_ = np.asarray(state["classes"], dtype=dtype)

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

    def fit(self, X, y, sample_weight=None) -> "GlassClassifier":
        """Train on X (N, D) and labels y (N,); returns self. sample_weight (N,):
        each row's weight in the loss, a weighted mean (scikit-learn's
        convention: an integer weight acts like repeating the row, 0 like
        leaving it out, up to the batches' composition)."""
        return self._fit(X, y, partial=False, sample_weight=sample_weight)

    def partial_fit(self, X, y, classes=None, sample_weight=None) -> "GlassClassifier":
        """One epoch on (X, y), continuing from the current weights and optimizer
        state. classes (every label that will occur) is required on the first call."""
        return self._fit(
            X, y, partial=True, classes=classes, sample_weight=sample_weight
        )

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
    GlassClassifier (no classes_, no class_weight); `layers(input_shape,
    n_outputs)` must output n_outputs values per row. y may be (N,) or (N, T);
    predict returns the same.
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

    def fit(self, X, y, sample_weight=None) -> "GlassRegressor":
        """Train on X (N, D) and targets y (N,) or (N, T); returns self.
        sample_weight (N,): each row's weight in the loss (see GlassClassifier)."""
        return self._fit(X, y, partial=False, sample_weight=sample_weight)

    def partial_fit(self, X, y, sample_weight=None) -> "GlassRegressor":
        """One epoch on (X, y), continuing from the current weights and optimizer
        state (the first call builds the network)."""
        return self._fit(X, y, partial=True, sample_weight=sample_weight)

    def _target_state(self) -> dict:
        return {"n_outputs": int(self.n_outputs_), "y_1d": bool(self._y_1d)}

    def _restore_target_state(self, state: dict) -> None:
        self.n_outputs_, self._y_1d = int(state["n_outputs"]), bool(state["y_1d"])

    def predict(self, X) -> np.ndarray:
        """Predicted targets: (N,) if fitted on y (N,), else (N, T)."""
        X = self._checked_input(X)
        out = self.model_.predict(X)  # (N, T)
        return out.ravel() if self._y_1d else out
