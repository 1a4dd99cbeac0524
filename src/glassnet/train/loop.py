"""The training loop: Trainer (one prepared step), fit, evaluate.

fit reads as the loop it runs (see fit); the helpers below it each do one thing:
check the arguments, prepare the data, run one epoch, check for divergence.
"""

import math
from operator import attrgetter, is_

import numpy as np

from glassnet._validation import (
    check_in_range,
    check_positive_int,
    check_seed,
    plain_repr,
)
from glassnet.errors import (
    ArgumentTypeError,
    ConfigError,
    DataError,
    ShapeError,
    TrainingDivergedError,
)
from glassnet.io.datasets import train_test_split
from glassnet.nn.layers.activations import Sigmoid, Softmax
from glassnet.nn.layers.base import (
    Layer,
    backward_params_of,
    output_layer,
    total_penalty,
)
from glassnet.nn.losses import (
    CrossEntropy,
    Loss,
    SoftmaxCrossEntropy,
    check_sample_weight,
    get_loss,
    loss_name,
    name_of,
)
from glassnet.train._known_models import known_model
from glassnet.train.callbacks import (
    Callback,
    EpochPosition,
    History,
    PrintLogger,
    ProgressBar,
    TrainingRun,
    call_order,
)
from glassnet.train.metrics import accuracy, get_metric
from glassnet.train.optimizers import get_optimizer


class Trainer:
    """forward, loss, backward, update: one step on one batch, prepared once.

    What can be decided once is decided here, so `step` does nothing a
    hand-written loop would not: the layers to run, a final Softmax fused into
    the loss, and the first layer's backward_params (the data needs no dL/dx).
    The optimizer is called through its public step. Inputs are trusted: fit
    validates them before the first step.
    """

    def __init__(self, model, loss: Loss, optimizer) -> None:
        self.model, self.loss, self.optimizer = model, loss, optimizer
        # one walk of the tree for all below, kept for the model's next fit
        self._known = known = known_model(model)
        self.params = list(known.params)
        every_layer = known.every_layer(model)
        self.layers = list(model.layers)
        self._step_loss, self._fused_softmax = loss, False
        last = self.layers[-1] if self.layers else None
        if type(last) is Softmax and type(loss) is CrossEntropy:
            # A final Softmax under cross-entropy: differentiate the two together, as
            # SoftmaxCrossEntropy of the Softmax's input, dL/dz = (p - y) / N, the way
            # the seeds do by hand. Same math (CrossEntropy's clipping of p below the
            # smallest float aside) in a dozen fewer NumPy calls: XOR step 25 % faster.
            self.layers.pop()
            self._step_loss = SoftmaxCrossEntropy(loss.reduction)
            self._fused_softmax = True
        self._backward_layers = self.layers[:0:-1]  # all but the first, last first
        self.clipping = (
            getattr(optimizer, "clipnorm", None) is not None
            or getattr(optimizer, "clipvalue", None) is not None
        )
        self.clipped_steps = 0
        # layers with a regularization penalty (an l2 option): its value joins the
        # reported loss; its gradient is already in their backward
        self._penalized = [
            layer
            for layer in every_layer
            if getattr(layer, "l2", 0) or type(layer).penalty is not Layer.penalty
        ]
        self._first_backward = (
            backward_params_of(self.layers[0]) if self.layers else _no_gradient
        )

    def __enter__(self) -> "Trainer":
        self.model.set_training(True)
        return self

    def __exit__(self, *exc) -> None:
        self.model.set_training(False)

    def step(self, x: np.ndarray, y: np.ndarray, sample_weight=None) -> float:
        """One update on the batch (x, y); returns the batch loss before the update.
        sample_weight: (N,) weights for the loss (see glassnet.losses), or None."""
        for layer in self.layers:
            x = layer.forward(x)
        loss = self._step_loss
        if sample_weight is None:
            value = loss.forward(x, y)
        else:
            value = loss.forward(x, y, sample_weight)
        dout = loss.backward()
        layer = None
        try:  # free when nothing raises; names a backward that returned None
            for layer in self._backward_layers:
                dout = layer.backward(dout)
            layer = None  # now the first layer's
            self._first_backward(dout)  # parameter gradients only: x is the data
        except Exception:
            if dout is None:
                raise self._returned_none(layer) from None
            raise
        for layer in self._penalized:  # the loss the gradients belong to
            value += layer.penalty()
        self.optimizer.step(self.params)
        if self.clipping and self.optimizer.last_clip.clipped:
            self.clipped_steps += 1  # reported per epoch in History
        self._last_x = x
        return value

    def _returned_none(self, failed) -> ArgumentTypeError:
        """The error for a backward that returned None: the layer that ran before
        `failed` (the one whose backward raised, or None for the first layer)."""
        order = self._backward_layers
        i = order.index(failed) if failed in order else len(order)
        culprit = order[i - 1] if i > 0 else None
        index = len(self.layers) - i  # the culprit's index in the model
        name = type(culprit).__name__ if culprit is not None else "a layer"
        return ArgumentTypeError(
            f"fit: layer {index} ({name}).backward returned None; backward must "
            "return dL/dx, the gradient with respect to its input (x's shape)"
        )

    def penalty(self) -> float:
        """The model's total_penalty, from the layers that can have one (found
        once, not by a walk of the tree per call)."""
        return sum(layer.penalty() for layer in self._penalized)

    @property
    def last_output(self) -> np.ndarray:
        """The model's output for the last batch (before that step's update)."""
        if self._fused_softmax:
            return self._step_loss._cache[0]  # the probabilities of the fused loss
        return self._last_x


def _no_gradient(dout: np.ndarray) -> None:
    """The first layer's backward_params for a model without layers."""


def fit(
    model,
    X,
    y=None,
    *,
    loss=None,
    optimizer="sgd",
    epochs: int = 1,
    batch_size: int | None = 32,
    shuffle: bool = True,
    validation_split: float = 0.0,
    validation_data=None,
    metrics="auto",
    callbacks=(),
    verbose="auto",
    seed: int | None = None,
    initial_epoch: int = 0,
    sample_weight=None,
    class_weight=None,
) -> History:
    """Train `model` on (X, y) with minibatch gradient descent; returns a History.

    X: (N, ...) float; y: targets of the output's shape, or integer labels (N,)
    (or one-hot (N, K)) for the classification losses.
    loss: a Loss or a name in glassnet.losses.LOSSES; None picks one (infer_loss).
    A loss that takes probabilities (cross_entropy, binary_cross_entropy) needs a
    model that ends in Softmax / Sigmoid; one that takes logits, a model that
    does not (ConfigError otherwise).
    optimizer: an Optimizer (keeps its state across fit calls) or a name.
    epochs: train until this epoch count; initial_epoch: the first one to run.
    batch_size: rows per step; None means the whole data set (full-batch).
    shuffle: reshuffle the rows every epoch with the model's generator.
    validation_split: fraction of rows held out (stratified for labels) and
    reported as val_loss / val_<metric>; or validation_data=(X_val, y_val).
    metrics: "auto" (accuracy for classification losses), None, or names.
    callbacks: Callback instances (EarlyStopping, schedules, your own); each is
    handed the TrainingRun (model, optimizer, loss, generator, history, stop flag).
    verbose: 0 silent; 1 a ProgressBar (drawn on a terminal only); 2 a PrintLogger,
    one line per epoch on stderr; "auto" is 1.
    seed: reseeds the generator used for shuffling and splitting (the model's own
    `model.rng` otherwise): with Sequential(seed=...) runs are bitwise repeatable.
    sample_weight: (N,) weights >= 0, one per row; class_weight: {label: weight}
    or "balanced" (n_samples / (n_classes * np.bincount(y)), scikit-learn's
    formula), for integer labels or one-hot rows. Both weight each row's loss:
    every batch's loss is sum(w_i * l_i) / sum(w_i) (see glassnet.losses); given
    together, a row's weight is their product. The logged loss is weighted;
    metrics (accuracy) are not. Validation rows are not weighted.

    Returns the History of the epochs run, also kept as `model.history` (set when
    training starts, so it holds the finished epochs if training fails). fit
    leaves nothing else on the model: the optimizer and the loss are the ones you
    passed (or get_optimizer / get_loss of the names).

    A non-finite loss (or weights) stops training with TrainingDivergedError
    naming the epoch and step; the weights are first restored to those the last
    finished epoch ended with (or those training started with).
    """
    _check_arguments(epochs, batch_size, validation_split, verbose)
    check_seed("fit", seed)
    rng = np.random.default_rng(seed) if seed is not None else model.rng
    loss = get_loss(loss) if loss is not None else infer_loss(model, y)
    X, y = _prepare(model, X, y, loss)
    check_loss_fits_model(model, loss, X)
    weights = row_weights(y, sample_weight, class_weight, len(X))
    if weights is not None:
        _check_takes_weights(loss)
    X, y, validation, weights = _validation_rows(
        model, X, y, loss, validation_split, validation_data, rng, weights
    )
    metrics = _metrics(metrics, loss)
    _trust_checked_labels(metrics, y)
    optimizer = get_optimizer(optimizer)
    model.history = History()  # the only thing fit leaves on the model
    run = TrainingRun(model, optimizer, loss, rng, model.history, epochs, initial_epoch)
    run.start_lr = optimizer.lr
    callbacks = _callbacks(run, callbacks, verbose)
    batches = _Batches(X, y, batch_size, rng if shuffle else None, weights)
    run.rows, run.batch_size = batches.rows, batches.size  # a backup checks them
    run.metrics = tuple(metrics)
    trainer = Trainer(model, loss, optimizer)
    hooks = _BatchHooks(callbacks, run, batches, trainer)
    logs: dict = {}
    for cb in callbacks:
        cb.on_train_begin(logs)
    # on_epoch_begin of the callbacks that define one (History does not)
    epoch_begin = [cb for cb in callbacks if _defines(cb, "on_epoch_begin")]
    model_attributes = vars(model)  # read for the stop_training of older callbacks
    # A diverging run ends in TrainingDivergedError; NumPy's overflow warnings on
    # the way there would only repeat it.
    with trainer, np.errstate(over="ignore", invalid="ignore"):
        finite = _FiniteWeights(trainer.params, trainer._known)
        for epoch in range(run.initial_epoch, epochs):
            resume, run.resume_position = run.resume_position, None
            if resume is None:  # a resumed epoch's on_epoch_begin ran before its backup
                for cb in epoch_begin:
                    cb.on_epoch_begin(epoch, logs)
            try:
                logs = _train_epoch(
                    trainer, batches, loss, metrics, hooks, epoch, resume
                )
                finite.take(epoch)
            except TrainingDivergedError as exc:
                raise finite.restore(exc) from None
            if validation is not None:
                logs.update(_validation_logs(trainer, *validation, metrics))
            if trainer.clipping:  # how many of the epoch's steps were clipped
                logs["clipped_steps"] = trainer.clipped_steps
                trainer.clipped_steps = 0
            logs["lr"] = optimizer.lr
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
            if (run.stop_training or "stop_training" in model_attributes) and (
                _stop_requested(run)
            ):
                break
    for cb in callbacks:
        cb.on_train_end(logs)
    run.callbacks = []  # no reference cycle run -> callbacks -> run left behind
    return run.history


# -- before the first epoch ------------------------------------------------------


def _check_arguments(epochs, batch_size, validation_split, verbose) -> None:
    if (
        type(epochs) is int
        and epochs >= 1
        and (batch_size is None or (type(batch_size) is int and batch_size >= 1))
        and type(validation_split) in (float, int)
        and 0.0 <= validation_split < 1.0
        and verbose in _VERBOSE
    ):  # plain values, the checks below passed without building their calls
        return
    check_positive_int("fit", epochs=epochs)
    if batch_size is not None:
        check_positive_int("fit", batch_size=batch_size)
    check_in_range("fit", "validation_split", validation_split, 0.0, 1.0)
    if verbose not in _VERBOSE:
        raise ConfigError(
            f"fit: verbose must be 0, 1, 2 or 'auto', got {plain_repr(verbose)}"
        )


_VERBOSE = (0, 1, 2, "auto", False, True)


def infer_loss(model, y) -> Loss:
    """The loss fit uses when none is given: cross_entropy after a final Softmax,
    binary_cross_entropy after a final Sigmoid, softmax_cross_entropy for integer
    labels, mean squared error otherwise."""
    activation = final_activation(model)
    if activation is not None:
        return get_loss(loss_name("probabilities", activation))
    y = np.asarray(y)
    if y.ndim == 1 and np.issubdtype(y.dtype, np.integer):
        return get_loss(loss_name("logits", "softmax"))
    return get_loss(loss_name("values"))


_PROBABILITY_LAYERS = {Softmax: "softmax", Sigmoid: "sigmoid"}


def final_activation(model) -> str | None:
    """ "softmax" or "sigmoid" when the model ends in that layer, else None."""
    return _activation_of(output_layer(model))


def _activation_of(layer) -> str | None:
    for cls, name in _PROBABILITY_LAYERS.items():
        if isinstance(layer, cls):
            return name
    return None


def check_loss_fits_model(
    model, loss: Loss, X: np.ndarray, owner: str = "fit", rows: int = 32
) -> None:
    """Refuse a loss whose declared input_kind the model does not produce.

    A loss that takes probabilities needs a final Softmax / Sigmoid, or a custom
    final layer whose outputs on the first `rows` rows of X lie in [0, 1]; one
    that takes logits must not follow a final Softmax / Sigmoid (it would apply
    its own activation to probabilities).
    """
    if loss.input_kind == "values":
        return
    last = output_layer(model)
    activation = _activation_of(last)
    if loss.input_kind == "logits" and activation is None:
        return  # the common case, decided without building a message
    name = type(last).__name__
    if loss.input_kind == "logits":
        raise ConfigError(
            f"{owner}: the model ends in {name} and loss={name_of(loss)!r} takes "
            f"logits: it would apply {loss.activation or 'its activation'} to "
            "probabilities; use "
            f"loss={loss_name('probabilities', activation)!r}, or drop the final "
            f"{name} layer"
        )
    if loss.input_kind != "probabilities" or activation is not None:
        return
    ends_in = f"ends in {name}" if last is not None else "has no layers"
    if last is not None and not type(last).__module__.startswith("glassnet."):
        out = model.forward(X[:rows], training=False)  # a custom layer: look at it
        if out.size == 0 or (out.min() >= 0.0 and out.max() <= 1.0):
            return
        ends_in += (
            f", whose outputs on the first rows lie in [{out.min():.3g}, "
            f"{out.max():.3g}], not in [0, 1]"
        )
    if loss.activation in ("softmax", "sigmoid"):
        fix = (
            f"on logits use loss={loss_name('logits', loss.activation)!r}, or add "
            f"{loss.activation.title()}() as the last layer"
        )
    else:  # a custom loss that does not say which activation it expects
        fix = "on logits use a loss that takes logits, or add Softmax() / Sigmoid()"
    raise ConfigError(
        f"{owner}: loss={name_of(loss)!r} takes probabilities, but the model "
        f"{ends_in}; {fix}"
    )


def _prepare(model, X, y, loss: Loss, name: str = "X"):
    """Validate (X, y) against the model once; returns arrays ready for steps."""
    X, out_shape = model._checked_input(X, name)
    if y is None:
        raise ArgumentTypeError(f"{name}: targets y are required to compute a loss")
    y = np.asarray(y)
    if len(X) == 0:
        raise DataError(f"{name}: expected at least one row, got 0 rows")
    if y.ndim == 0 or len(y) != len(X):
        got = "a scalar" if y.ndim == 0 else f"{len(y)} rows"
        raise ShapeError(
            f"y: expected {len(X)} rows (one per row of {name}), got {got}"
        )
    if y.dtype.kind not in "biuf":  # bool, integers, floats (np.number but faster)
        if y.dtype.kind == "c":
            raise DataError("y: expected real targets, got complex values")
        raise DataError(_not_numbers(y, loss))
    if out_shape is None:
        out_shape = model.forward(X[:1], training=False).shape[1:]
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise DataError("y: expected finite values, got NaN or inf")
    y = loss.prepare_target(y, (len(X), *out_shape), model.dtype)
    return X, y


def _not_numbers(y: np.ndarray, loss: Loss) -> str:
    """The message for targets that are not numbers (class names, most often)."""
    encode = (
        "encode labels as 0..K-1, e.g. classes, y = np.unique(y, return_inverse=True)"
    )
    if loss.target_kind == "labels":
        return f"y: expected integer class labels, got dtype {y.dtype}; {encode}"
    return (
        f"y: {name_of(loss)} takes real-valued targets, got dtype {y.dtype}; for "
        f"classes, {encode}, and use a classification loss"
    )


def row_weights(y, sample_weight, class_weight, n: int) -> np.ndarray | None:
    """The per-row weights (n,) of sample_weight times class_weight, or None.

    y: the prepared targets, integer labels (n,) or one-hot rows (n, K) for
    class_weight. "balanced" gives class c the weight n / (K * count(c)), K the
    number of classes present (scikit-learn's compute_class_weight)."""
    weights = None
    if sample_weight is not None:
        weights = check_sample_weight(sample_weight, n, "fit")
    if class_weight is None:
        return weights
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:  # a single output's targets (N, 1)
        y = y.reshape(-1)
    if y.ndim == 2 and y.shape[1] > 1:
        labels = y.argmax(axis=1)  # one-hot rows
    elif y.dtype.kind in "biu" or (y.ndim == 1 and np.all(y == np.round(y))):
        labels = y.reshape(-1).astype(np.intp)
    else:
        raise ConfigError(
            "fit: class_weight needs class labels (integers 0..K-1 or one-hot "
            f"rows), got targets of dtype {y.dtype} and shape {y.shape}"
        )
    classes, counts = np.unique(labels, return_counts=True)
    if isinstance(class_weight, str) and class_weight == "balanced":
        per_class = dict(
            zip(classes.tolist(), (n / (len(classes) * counts)).tolist(), strict=True)
        )
    elif isinstance(class_weight, dict):
        per_class = {}
        for key, value in class_weight.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                value = float(np.asarray(value)) if np.ndim(value) == 0 else None
            if value is None or not (math.isfinite(value) and value >= 0):
                raise ConfigError(
                    f"fit: class_weight[{key}] must be a number >= 0, got "
                    f"{class_weight[key]}"
                )
            per_class[int(key)] = float(value)
    else:
        raise ConfigError(
            "fit: class_weight must be a dict {label: weight} or 'balanced', "
            f"got {class_weight!r}"
        )
    table = np.ones(int(labels.max()) + 1 if n else 0)  # classes not named: 1
    for key, value in per_class.items():
        if 0 <= key < len(table):
            table[key] = value
    w = table[labels]  # (n,)
    w = w if weights is None else w * weights
    return check_sample_weight(w, n, "fit (class_weight)")


def _check_takes_weights(loss: Loss) -> None:
    """Refuse sample weights for a loss whose forward takes no sample_weight (a
    custom loss written before weights existed)."""
    import inspect

    try:
        inspect.signature(loss.forward).bind(None, None, None)
    except TypeError:
        raise ConfigError(
            f"fit: sample_weight / class_weight need a loss whose forward takes "
            f"them, forward(pred, target, sample_weight=None); {type(loss).__name__}"
            ".forward takes (pred, target) only"
        ) from None


def _validation_rows(model, X, y, loss, split, validation_data, rng, weights=None):
    """(X, y, (X_val, y_val) or None, training weights): validation_data
    checked, or split off (the weights with their rows)."""
    if validation_data is not None:
        if not (
            isinstance(validation_data, (tuple, list)) and len(validation_data) == 2
        ):
            raise ArgumentTypeError(
                "fit: validation_data must be a pair (X_val, y_val)"
            )
        validation = _prepare(model, *validation_data, loss, name="validation_data X")
        return X, y, validation, weights
    if split > 0 and weights is not None:  # split row numbers: the same split
        train, test, y, y_val = train_test_split(np.arange(len(X)), y, split, rng=rng)
        return X[train], y, (X[test], y_val), weights[train]
    if split > 0:
        X, X_val, y, y_val = train_test_split(X, y, split, rng=rng)
        return X, y, (X_val, y_val), None
    return X, y, None, weights


class _Metrics(dict):
    """{name: metric function}, plus the threshold that turns a single output
    into a class (0.5 for probabilities, 0 for logits)."""

    threshold = 0.5


def _metrics(metrics, loss: Loss) -> _Metrics:
    found = _Metrics({name: get_metric(name) for name in _metric_names(metrics, loss)})
    found.threshold = _threshold(loss)
    return found


def _trust_checked_labels(metrics: _Metrics, y: np.ndarray) -> None:
    """Swap accuracy for _accuracy_of_labels when the training labels y (N,) are
    all >= 0, checked here once per fit: accuracy itself scans every batch's
    labels for the negative ones that mark padding (1.4 us of a 4-row step)."""
    if (
        metrics.get("accuracy") is accuracy
        and y.ndim == 1
        and y.dtype.kind in "iu"
        and len(y)
        and y.min() >= 0
    ):
        metrics["accuracy"] = _accuracy_of_labels


def _accuracy_of_labels(out: np.ndarray, labels: np.ndarray, threshold) -> float:
    """accuracy(out, labels, threshold) for labels (N,) known to be >= 0."""
    if out.ndim == 2 and out.shape[1] > 1:
        return float(np.count_nonzero(out.argmax(axis=1) == labels)) / len(labels)
    return accuracy(out, labels, threshold)


def _threshold(loss: Loss) -> float:
    return 0.0 if loss.input_kind == "logits" else 0.5


def _metric_names(metrics, loss: Loss) -> list[str]:
    if metrics == "auto":  # accuracy for the losses that classify
        return ["accuracy"] if loss.input_kind != "values" else []
    if metrics is None:
        return []
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    for name in names:
        get_metric(name)
    return names


def _callbacks(run: TrainingRun, callbacks, verbose) -> list[Callback]:
    """History, the user's callbacks, then the progress reporting verbose asks
    for; each handed the run."""
    if verbose == 0 and type(callbacks) in (tuple, list) and not callbacks:
        run.history.set_run(run)  # History alone: nothing to check or order
        run.callbacks = [run.history]
        return run.callbacks
    if isinstance(callbacks, Callback):  # callbacks=EarlyStopping(...): one is fine
        callbacks = [callbacks]
    callbacks = [run.history, *callbacks]
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise ArgumentTypeError(
                f"fit: callbacks must be Callback instances, got {cb!r}"
            )
    callbacks = call_order(callbacks)  # a backup after the callbacks it saves
    if verbose == 2:
        callbacks.append(PrintLogger())
    elif verbose in (1, "auto"):  # True == 1
        callbacks.append(ProgressBar())
    for cb in callbacks:
        cb.set_run(run)
    run.callbacks = callbacks
    return callbacks


# -- one epoch -------------------------------------------------------------------


class _BatchHooks:
    """on_batch_begin / on_batch_end of the callbacks that define them.

    Only callbacks that override a hook are called, and `active` is False when
    none does: fit then builds no batch logs at all (a step of XOR takes ~20 us,
    and calling empty hooks on every callback would add ~5 % to it)."""

    def __init__(self, callbacks: list[Callback], run=None, batches=None, trainer=None):
        self.run, self.batches, self.trainer = run, batches, trainer
        if run is not None and callbacks == [run.history]:  # fit's own History only
            self.begin, self.end, self.active, self.track = [], [], False, False
            return
        base = Callback.on_batch_begin, Callback.on_batch_end
        # looked up on the instance: a callback may set its hook in __init__
        self.begin = [cb for cb in callbacks if _overrides(cb.on_batch_begin, base[0])]
        self.end = [cb for cb in callbacks if _overrides(cb.on_batch_end, base[1])]
        self.active = bool(self.begin or self.end)
        # the position in the epoch is kept only for a backup that saves it
        self.track = run is not None and any(cb.runs_last for cb in self.end)

    def on_batch_begin(self, batch: int, size: int) -> None:
        logs = {"size": size}
        for cb in self.begin:
            cb.on_batch_begin(batch, logs)

    def on_batch_end(self, batch: int, size: int, loss: float, where=None) -> None:
        """where: (epoch, running loss sum, running metric sums) after the step,
        kept as run.position for a mid-epoch backup (BackupAndRestore)."""
        if self.track and where is not None:
            epoch, total, sums = where
            self.run.position = EpochPosition(
                epoch, batch + 1, self.batches.order, total, sums,
                self.trainer.clipped_steps,
            )  # fmt: skip
        logs = {"size": size, "loss": loss}
        for cb in self.end:
            cb.on_batch_end(batch, logs)


def _overrides(hook, base) -> bool:
    return getattr(hook, "__func__", hook) is not base


def _defines(cb: Callback, hook: str) -> bool:
    """Whether cb's hook (looked up on the instance) is not Callback's no-op."""
    return _overrides(getattr(cb, hook), getattr(Callback, hook))


class _Batches:
    """The training rows cut into batches; in a new random order every epoch when
    an rng is given. Iterating gives one epoch's (xb, yb) pairs."""

    def __init__(self, X, y, batch_size: int | None, rng=None, weights=None) -> None:
        self.X, self.y, self.rows = X, y, len(X)
        self.weights = weights  # (N,) or None; batched by weight_batches
        self.size = self.rows if batch_size is None else min(batch_size, self.rows)
        # One batch of all rows has the same mean gradient in any order: it is
        # not shuffled (a permutation and two gathers less per epoch).
        self.rng = rng if self.size < self.rows else None
        self.order = None  # the current epoch's row permutation (for backups)
        self.resume = None  # an EpochPosition: the next epoch continues it

    def _order(self):
        """The epoch's row order and its first batch: a new permutation, or the
        one of the epoch a mid-epoch backup continues (self.resume, used once)."""
        resume, self.resume = self.resume, None
        if resume is not None:
            self.order = resume.order
            return self.order, resume.batch * self.size
        self.order = self.rng.permutation(self.rows) if self.rng is not None else None
        return self.order, 0

    def __iter__(self):
        X, y, size = self.X, self.y, self.size
        if size == self.rows and self.resume is None:
            return iter(((X, y),))
        order, first = self._order()
        if order is None:
            cuts = range(first, len(X), size)
            return ((X[i : i + size], y[i : i + size]) for i in cuts)
        # a gather per batch, not a copy per epoch; take: 10 % faster
        return (
            (X.take(idx, axis=0), y.take(idx, axis=0))
            for idx in (order[i : i + size] for i in range(first, len(X), size))
        )

    def weighted(self):
        """One epoch's (xb, yb, wb) triples (the rows' weights beside them)."""
        X, y, w, size = self.X, self.y, self.weights, self.size
        if size == self.rows and self.resume is None:
            return iter(((X, y, w),))
        order, first = self._order()
        if order is None:
            cuts = range(first, len(X), size)
            return ((X[i : i + size], y[i : i + size], w[i : i + size]) for i in cuts)
        return (
            (X.take(idx, axis=0), y.take(idx, axis=0), w.take(idx))
            for idx in (order[i : i + size] for i in range(first, len(X), size))
        )


def _train_epoch(trainer, batches, loss, metrics, hooks, epoch: int, resume=None):
    """One pass over the batches, a step each; returns the epoch's mean loss and
    metrics (as Keras: over the epoch's batches, the weights changing as it goes).
    Raises TrainingDivergedError at the first non-finite loss.
    resume: an EpochPosition; the epoch continues from it (a mid-epoch backup)."""
    if batches.weights is not None:
        return _train_weighted_epoch(
            trainer, batches, loss, metrics, hooks, epoch, resume
        )
    mean = loss.reduction == "mean"
    if resume is None:
        total, sums, first = 0.0, dict.fromkeys(metrics, 0.0), 0
    else:
        total, sums, first = _epoch_start(trainer, batches, metrics, resume)
    for i, (xb, yb) in enumerate(batches, first):
        n = len(xb)
        if hooks.active:
            hooks.on_batch_begin(i, n)
        value = trainer.step(xb, yb)
        if not math.isfinite(value):
            raise TrainingDivergedError(
                f"fit: loss became {value} at epoch {epoch + 1}, step {i + 1}"
            )
        total += value * n if mean else value
        for name, metric in metrics.items():
            sums[name] += metric(trainer.last_output, yb, metrics.threshold) * n
        if hooks.active:
            hooks.on_batch_end(i, n, value, (epoch, total, sums))
    N = batches.rows
    logs = {"loss": total / N if mean else total}
    for name, value in sums.items():
        logs[name] = value / N
    return logs


def _train_weighted_epoch(trainer, batches, loss, metrics, hooks, epoch, resume):
    """_train_epoch with sample weights: each batch's loss is its weighted mean,
    and the epoch's loss the weighted mean over all rows (batches weighted by
    their weight sums). A batch whose weights are all 0 is skipped."""
    mean = loss.reduction == "mean"
    total, sums, first = _epoch_start(trainer, batches, metrics, resume)
    for i, (xb, yb, wb) in enumerate(batches.weighted(), first):
        n, w_sum = len(xb), float(wb.sum())
        if w_sum == 0.0:
            continue  # nothing to learn from, and no defined mean
        if hooks.active:
            hooks.on_batch_begin(i, n)
        value = trainer.step(xb, yb, wb)
        if not math.isfinite(value):
            raise TrainingDivergedError(
                f"fit: loss became {value} at epoch {epoch + 1}, step {i + 1}"
            )
        total += value * w_sum if mean else value
        for name, metric in metrics.items():
            sums[name] += metric(trainer.last_output, yb, metrics.threshold) * n
        if hooks.active:
            hooks.on_batch_end(i, n, value, (epoch, total, sums))
    logs = {"loss": total / float(batches.weights.sum()) if mean else total}
    for name, value in sums.items():
        logs[name] = value / batches.rows
    return logs


def _epoch_start(trainer, batches, metrics, resume):
    """(running loss sum, metric sums, first batch index) an epoch starts with:
    zeros, or where a mid-epoch backup left the epoch (resume, an EpochPosition)."""
    if resume is None:
        return 0.0, dict.fromkeys(metrics, 0.0), 0
    if set(resume.sums) != set(metrics):
        raise ConfigError(
            f"fit: the backup was written while logging metrics {sorted(resume.sums)}, "
            f"this fit logs {sorted(metrics)}; pass the same metrics"
        )
    batches.resume = resume  # its row order, its first batches left out
    trainer.clipped_steps = resume.clipped_steps
    return resume.total, dict(resume.sums), resume.batch


class _FiniteWeights:
    """The weights as the last finished epoch left them (or as training started):
    what fit restores when training diverges.

    take() copies every weight, end to end, into one array and checks that copy:
    the epoch's last update may overflow after its loss was computed. One copy
    that is also the check costs 2 us per epoch for the iris model's six tensors;
    a copy and a check per tensor cost 8 us (a fifth of an epoch). When the
    weights are consecutive views of one buffer (an optimizer's flat buffer, see
    _consecutive), the copy is that buffer's slice: 0.6 us instead of 1.7 us.
    """

    def __init__(self, params: list, known=None) -> None:
        self.params, self.epoch, self.known = params, None, known
        # what the model's last fit found (KnownModel keeps it), if the weights
        # are still those views; else looked for once, after the first epoch
        # (an optimizer gathers the weights at its first step)
        self.views, self.span = getattr(known, "weights_span", None) or ([], None)
        self.look = not (self.views and self._holding())
        if self.look:
            self.views, self.span = [], None
        self.flat = self._joined()

    def _holding(self) -> bool:
        """Whether every parameter still holds the view self.views has for it."""
        views = self.views
        return len(views) == len(self.params) and all(
            map(is_, map(_DATA, self.params), views)
        )

    def _joined(self) -> np.ndarray:
        """Every weight, end to end (P,): a copy."""
        if self.span is not None and self._holding():
            return self.span.copy()
        return np.concatenate([p.data.ravel() for p in self.params] or [[]])  # (P,)

    def take(self, epoch: int) -> None:
        if self.look:  # once per fit, after its first epoch
            self.look = False
            self.views = [p.data for p in self.params]
            self.span = _consecutive(self.views)
            if self.known is not None:
                self.known.weights_span = (self.views, self.span)
        flat = self._joined()
        # flat . flat, a sum of squares, is finite when every weight is (a sum
        # that overflowed is looked at entry by entry): one BLAS call, a quarter
        # of the time of isfinite(flat).all()
        if not math.isfinite(flat.dot(flat)) and not np.isfinite(flat).all():
            raise TrainingDivergedError(
                f"fit: weights became NaN or inf during epoch {epoch + 1}"
            )
        self.flat, self.epoch = flat, epoch

    def restore(self, error: Exception) -> TrainingDivergedError:
        """Put the kept weights back; returns error's message completed."""
        start = 0
        for p in self.params:
            n = p.data.size
            np.copyto(p.data, self.flat[start : start + n].reshape(p.data.shape))
            start += n
        kept = (
            "fit started with"
            if self.epoch is None
            else f"after epoch {self.epoch + 1}"
        )
        return TrainingDivergedError(
            f"{error}; restored the weights {kept} "
            "(lower the learning rate or check the data)"
        )


_DATA = attrgetter("data")


def _consecutive(arrays: list) -> np.ndarray | None:
    """The 1-D array whose consecutive slices `arrays` are, in order (the flat
    buffer an optimizer gathers the weights in), or None when they are not."""
    if not arrays:
        return None
    base = arrays[0].base
    if (
        type(base) is not np.ndarray
        or base.ndim != 1
        or not base.flags.c_contiguous
        or any(a.base is not base or not a.flags.c_contiguous for a in arrays)
    ):
        return None
    size, first = base.itemsize, _address(arrays[0])
    at = first
    for a in arrays:  # each begins where the one before it ends
        if _address(a) != at or a.dtype != base.dtype:
            return None
        at += a.size * size
    start = (first - _address(base)) // size
    span = base[start : start + (at - first) // size]  # (P,)
    return span if _address(span) == first else None


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def _stop_requested(run: TrainingRun) -> bool:
    if vars(run.model).get("stop_training"):  # a callback written for older glassnet
        raise ConfigError(
            "fit: a callback set model.stop_training, which fit does not read; "
            "set self.stop_training = True in the callback instead"
        )
    return run.stop_training


def _validation_logs(trainer: Trainer, X_val, y_val, metrics) -> dict:
    model = trainer.model
    logs = _evaluate_prepared(
        model, X_val, y_val, trainer.loss, list(metrics), penalty=trainer.penalty()
    )
    model.set_training(True)  # back to training mode for the next epoch
    return {f"val_{k}": v for k, v in logs.items()}


# -- evaluate --------------------------------------------------------------------


def evaluate(
    model,
    X,
    y,
    loss=None,
    metrics="auto",
    batch_size=None,
    *,
    sample_weight=None,
    class_weight=None,
) -> dict:
    """Loss and metrics of the model on (X, y), in inference mode.

    sample_weight / class_weight: as in fit; the loss is then the weighted mean
    sum(w_i * l_i) / sum(w_i) (metrics are not weighted)."""
    loss = get_loss(loss) if loss is not None else infer_loss(model, y)
    X, y = _prepare(model, X, y, loss)
    check_loss_fits_model(model, loss, X, owner="evaluate")
    weights = row_weights(y, sample_weight, class_weight, len(X))
    if weights is not None:
        _check_takes_weights(loss)
    return _evaluate_prepared(
        model, X, y, loss, _metric_names(metrics, loss), batch_size, weights
    )


def _evaluate_prepared(
    model, X, y, loss, metric_names, batch_size=None, weights=None, penalty=None
) -> dict:
    """evaluate on checked (X, y); penalty: the model's total_penalty, when the
    caller knows it without walking the tree (fit's Trainer)."""
    step = len(X) if not batch_size else max(batch_size, 1024)
    mean = loss.reduction == "mean"
    total, outs = 0.0, []
    for i in range(0, len(X), step):
        out = model.forward(X[i : i + step], training=False)
        if weights is None:
            total += loss.forward(out, y[i : i + step]) * (len(out) if mean else 1)
        elif weights[i : i + step].sum() > 0:
            wb = weights[i : i + step]
            total += loss.forward(out, y[i : i + step], wb) * (wb.sum() if mean else 1)
        outs.append(out)
    out = outs[0] if len(outs) == 1 else np.concatenate(outs)
    rows = len(X) if weights is None else float(weights.sum())
    # as in training (and Keras): the layers' regularization penalties join the loss
    if penalty is None:
        penalty = total_penalty(model)
    logs = {"loss": (total / rows if mean else total) + penalty}
    for name in metric_names:
        logs[name] = get_metric(name)(out, y, _threshold(loss))
    return logs
