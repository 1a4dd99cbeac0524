"""Sequential: layers applied in order, with fit / predict / evaluate."""

import numpy as np

from glassnet._kernels import sigmoid, softmax
from glassnet._validation import as_float_array, check_seed
from glassnet.errors import ArgumentTypeError, ConfigError, ShapeError
from glassnet.nn.layers.activations import (
    LeakyReLU,
    ReLU,
    Sigmoid,
    Softmax,
    make_activation,
)
from glassnet.nn.layers.base import Layer, backward_params_of, output_layer
from glassnet.nn.layers.dense import Dense
from glassnet.nn.parameter import Parameter


def _as_dtype(dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ConfigError(
            f"Sequential: dtype must be float32 or float64, got {dtype!r}"
        ) from None
    if dt not in (np.float32, np.float64):
        raise ConfigError(f"Sequential: dtype must be float32 or float64, got {dt}")
    return dt


class Sequential(Layer):
    """Layers applied in order; backward visits them in reverse.

        model = Sequential(Dense(4, 5), Tanh(), Dense(5, 3), seed=0)

    seed seeds the model's own np.random.Generator (`model.rng`), used to
    initialise the weights and, in fit, to shuffle and split: the same seed gives
    bitwise-equal weights in any process, and NumPy's global random state is
    never touched. dtype is float32 (fast, the default) or float64.
    A string among the layers is an activation name ("tanh", "relu", ...).

    Initialisation belongs to the layers: each is asked to fill in what it left
    unset (layer.initialize(model.rng, model.dtype)), so a layer given its own
    init, rng or dtype keeps them, and a Dense or Conv2D without an init uses its
    default, Glorot; pass init="he_normal" for a layer followed by ReLU.
    from_sizes chooses each layer's init from the activation after it.
    """

    def __init__(self, *layers, seed: int | None = None, dtype=None) -> None:
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        self.layers: list[Layer] = []
        for i, layer in enumerate(layers):
            if isinstance(layer, str):
                layer = make_activation(layer)
            if not isinstance(layer, Layer):
                raise ArgumentTypeError(
                    f"Sequential: layer {i} must be a glassnet Layer (or an activation "
                    f"name), got {layer!r} of type {type(layer).__name__}"
                )
            self.layers.append(layer)
        check_seed("Sequential", seed)
        self.seed = seed
        self._dtype_given = dtype is not None
        self.dtype = _as_dtype(np.float32 if dtype is None else dtype)
        self.rng = np.random.default_rng(seed)
        self.history = None  # the History of the last fit
        self._training = False
        self._initialize()

    def _initialize(self) -> None:
        for layer in self.layers:
            layer.initialize(self.rng, self.dtype)

    @classmethod
    def from_sizes(
        cls,
        sizes: list[int],
        activations: list[str],
        *,
        seed: int | None = None,
        dtype=np.float32,
    ) -> "Sequential":
        """A multilayer perceptron from layer sizes and one activation per layer.

            Sequential.from_sizes([2, 2, 2], activations=["sigmoid", "softmax"])

        builds Dense(2, 2), Sigmoid(), Dense(2, 2), Softmax(). Use "linear" for none.

        Each Dense gets the init that suits the activation after it: He (normal,
        zero bias) before ReLU or LeakyReLU; before Sigmoid or Softmax, PyTorch's
        Linear default "uniform": weight and bias both drawn from
        U(-1/sqrt(fan_in), 1/sqrt(fan_in)); Glorot (uniform, zero bias) otherwise
        (tanh, linear, logits). Glorot's variance argument assumes a zero-centred
        activation with slope 1 at 0 (tanh), which sigmoid is not; the smaller
        fan-in scale and random biases (which keep every unit's initial boundary
        from passing through the origin) train the seed's 2-2-2 sigmoid XOR
        network to 44/50 seeds, against 38/50 with Glorot and zero biases
        (PyTorch: 43/50; examples/xor.py).
        """
        sizes, activations = list(sizes), list(activations)
        if len(sizes) < 2:
            raise ConfigError(f"from_sizes: expected at least 2 sizes, got {sizes}")
        if len(activations) != len(sizes) - 1:
            raise ConfigError(
                f"from_sizes: expected {len(sizes) - 1} activations for sizes {sizes}, "
                f"got {len(activations)}: {activations}"
            )
        layers: list[Layer] = []
        for d, m, act in zip(sizes[:-1], sizes[1:], activations, strict=True):
            name = str(act).lower()
            activation = (
                None if name in ("linear", "identity") else make_activation(act)
            )
            if isinstance(activation, (ReLU, LeakyReLU)):
                init = "he_normal"
            elif isinstance(activation, (Sigmoid, Softmax)):
                init = "uniform"  # PyTorch's Linear default, bias included
            else:
                init = "glorot_uniform"
            layers.append(Dense(d, m, init=init))
            if activation is not None:
                layers.append(activation)
        return cls(*layers, seed=seed, dtype=dtype)

    # -- the Layer contract ---------------------------------------------------

    def forward(self, x: np.ndarray, training: bool | None = None) -> np.ndarray:
        """x (N, ...) through every layer in order. training=True or False sets the
        mode of every layer first; None (what a parent container passes) keeps it."""
        if training is not None and training is not self._training:
            self.set_training(training)
        for i, layer in enumerate(self.layers):
            try:
                x = layer.forward(x)
            except ShapeError as exc:
                raise ShapeError(f"layer {i} ({type(layer).__name__}): {exc}") from None
        return x

    def backward(self, dout: np.ndarray) -> np.ndarray:
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def backward_params(self, dout: np.ndarray) -> None:
        """backward without the model's dL/dx: the first layer gets
        backward_params, every other layer backward."""
        for layer in self.layers[:0:-1]:
            dout = layer.backward(dout)
        if self.layers:
            backward_params_of(self.layers[0])(dout)  # its dL/dx is not needed

    def children(self) -> list[tuple[str, Layer]]:
        return [(str(i), layer) for i, layer in enumerate(self.layers)]

    def own_parameters(self) -> list[Parameter]:
        return []  # every parameter belongs to one of the layers

    def set_training(self, training: bool) -> None:
        """Tell every layer, at every depth, whether it runs in training mode."""
        self._training = self.training = bool(training)
        for layer in self.layers:  # its children, without building their names
            layer.set_training(training)

    def initialize(self, rng: np.random.Generator, dtype) -> None:
        """As a layer inside another model: take the outer model's generator and
        dtype for whatever this one left unset (its own seed and dtype win)."""
        # its own seed: drawn afresh, the weights equal those of the model alone
        self.rng = rng if self.seed is None else np.random.default_rng(self.seed)
        if not self._dtype_given:
            self.dtype = np.dtype(dtype)
        self._initialize()

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...] | None:
        """One sample's output shape for one sample's input shape, checked layer by
        layer before any data is seen; None if some layer cannot tell."""
        shape = tuple(input_shape)
        for i, layer in enumerate(self.layers):
            try:
                shape = layer.output_shape(shape)
            except ShapeError as exc:
                raise ShapeError(f"layer {i} ({type(layer).__name__}): {exc}") from None
            if shape is None:
                return None
        return shape

    def summary(self, input_shape=None, batch_size: int = 32):
        """Per layer: output shape, parameter count, the shape of every gradient
        backward produces and what it caches for backward (bytes), with totals,
        for a batch of `batch_size` examples of shape `input_shape` (no batch axis).
        Needs no data; the model is not changed. See glassnet.reports.summary."""
        from glassnet.reports.summary import summary

        return summary(self, input_shape, batch_size=batch_size)

    def get_config(self) -> dict:
        return {"seed": self.seed, "dtype": self.dtype.name}

    # -- using a model ----------------------------------------------------------

    def _check_x(self, X, name: str = "X") -> np.ndarray:
        return self._checked_input(X, name)[0]

    def _checked_input(self, X, name: str = "X"):
        """(X as a float array of the model's dtype, one sample's output shape or
        None if some layer cannot tell), raising a glassnet error for bad X."""
        X = as_float_array(X, name, self.dtype)
        first = self.layers[0] if self.layers else None
        if X.ndim < 2:
            expected = (
                f"(N, {first.in_features})" if isinstance(first, Dense) else "(N, ...)"
            )
            raise ShapeError(
                f"{name}: expected a batch of shape {expected}, got {X.shape}; "
                "reshape a single sample with x.reshape(1, -1)"
            )
        out_shape = self.output_shape(X.shape[1:])  # names the first misfit layer
        return X, out_shape

    def predict(self, X, batch_size: int | None = None) -> np.ndarray:
        """The network's output for X in inference mode: (N, ...) -> (N, M).

        For classifiers this is the last layer's output (logits unless the model
        ends in Softmax/Sigmoid); see predict_proba and predict_classes.
        """
        X = self._check_x(X)
        if batch_size is None or batch_size >= len(X):
            return self.forward(X, training=False)
        parts = [
            self.forward(X[i : i + batch_size], training=False)
            for i in range(0, len(X), batch_size)
        ]
        return np.concatenate(parts)

    def predict_proba(self, X, batch_size: int | None = None) -> np.ndarray:
        """Class probabilities (N, K), rows summing to 1.

        The output is used as is after a final Softmax; otherwise it is read as
        logits and passed through softmax. A single output unit (binary) gives
        two columns [1 - p, p], p = sigmoid(logit) or the final Sigmoid's output.
        """
        out = self.predict(X, batch_size)
        last = output_layer(self)
        if out.ndim != 2:
            raise ShapeError(
                f"predict_proba: expected outputs of shape (N, K), got {out.shape}"
            )
        if out.shape[1] == 1:
            p = out if isinstance(last, Sigmoid) else sigmoid(out)
            return np.hstack([1.0 - p, p])
        if isinstance(last, Softmax):
            return out
        return softmax(out)

    def predict_classes(self, X, batch_size: int | None = None) -> np.ndarray:
        """Integer class of each row: argmax of the outputs (threshold for one unit)."""
        return self.predict_proba(X, batch_size).argmax(axis=1)

    def fit(
        self,
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
    ):
        """Train on (X, y); returns the History, also kept as model.history.

            model.fit(X, y, loss="softmax_cross_entropy", optimizer=gn.Adam(),
                      epochs=20, validation_split=0.2, callbacks=[gn.EarlyStopping()])

        A thin forwarder to glassnet.fit (glassnet.train.loop.fit), whose
        docstring describes every argument: help(gn.fit).
        """
        from glassnet.train.loop import fit

        return fit(
            self,
            X,
            y,
            loss=loss,
            optimizer=optimizer,
            epochs=epochs,
            batch_size=batch_size,
            shuffle=shuffle,
            validation_split=validation_split,
            validation_data=validation_data,
            metrics=metrics,
            callbacks=callbacks,
            verbose=verbose,
            seed=seed,
            initial_epoch=initial_epoch,
            sample_weight=sample_weight,
            class_weight=class_weight,
        )

    def evaluate(
        self,
        X,
        y,
        loss=None,
        metrics="auto",
        batch_size: int | None = None,
        *,
        sample_weight=None,
        class_weight=None,
    ) -> dict:
        """{"loss": ..., "accuracy": ...} on (X, y) in inference mode.

        A thin forwarder to glassnet.train.loop.evaluate: loss and metrics as in
        fit (None infers the loss); batch_size bounds the rows per forward pass.
        """
        from glassnet.train.loop import evaluate

        return evaluate(
            self,
            X,
            y,
            loss=loss,
            metrics=metrics,
            batch_size=batch_size,
            sample_weight=sample_weight,
            class_weight=class_weight,
        )

    def save(self, path) -> None:
        """Write the architecture and weights to `path` (safetensors, atomically);
        gn.load(path) rebuilds the model. See glassnet.serialization."""
        from glassnet.io.serialization import save

        save(self, path)

    # -- container conveniences -----------------------------------------------

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index):
        return self.layers[index]

    def __iter__(self):
        return iter(self.layers)

    def __repr__(self) -> str:
        inner = ",\n".join(
            "  " + repr(layer).replace("\n", "\n  ") for layer in self.layers
        )
        return f"Sequential(\n{inner},\n  seed={self.seed}, dtype={self.dtype.name}\n)"
