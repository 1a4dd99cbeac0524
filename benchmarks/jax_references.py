"""JAX training steps: the compiled peer of the hand-written NumPy references.

What a speed-minded JAX user writes for each benchmark network: the forward
pass and loss in jax.numpy, gradients by jax.value_and_grad, the optimizer
update written out, and the whole step (and, for the epoch cases, the whole
epoch with lax.scan) compiled into one XLA program with jax.jit, the training
state donated (donate_argnums=0) so XLA updates the buffers in place.

The math is that of benchmarks/references.py (same layers, same losses, SGD or
Adam with PyTorch's defaults); tests/test_benchmarks.py copies glassnet's
weights into both, takes three steps in float64 and compares.

Shapes follow glassnet: x (N, D) or (N, C, H, W), Dense weights (D, M), biases
(M,), convolution kernels (F, C, KH, KW), labels (N,). Parameters are a tuple
of arrays in glassnet's order (W1, b1, W2, b2, ...).

Imported only by benchmarks/run.py and the tests, after run.py has set
XLA_FLAGS: JAX is never a glassnet dependency.
"""

import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

# -- losses: one forward pass each, (params, x, y) -> mean loss ------------------


def _cross_entropy(logits, y):
    """Mean softmax cross-entropy of logits (N, K) against labels y (N,)."""
    logp = jax.nn.log_softmax(logits, axis=1)  # (N, K)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def iris_loss(params, x, y):
    """4-5-4-3: Dense, tanh, Dense, tanh, Dense, softmax cross-entropy."""
    W1, b1, W2, b2, W3, b3 = params
    a1 = jnp.tanh(x @ W1 + b1)  # (N, 5)
    a2 = jnp.tanh(a1 @ W2 + b2)  # (N, 4)
    return _cross_entropy(a2 @ W3 + b3, y)  # (N, 3) -> ()


def xor_loss(params, x, y):
    """2-2-2: Dense, sigmoid, Dense, softmax cross-entropy."""
    W1, b1, W2, b2 = params
    a1 = jax.nn.sigmoid(x @ W1 + b1)  # (N, 2)
    return _cross_entropy(a1 @ W2 + b2, y)


def autoencoder_loss(params, x, y):
    """64-32-64-64: Dense, sigmoid, Dense, sigmoid, Dense; MSE over every element."""
    W1, b1, W2, b2, W3, b3 = params
    a1 = jax.nn.sigmoid(x @ W1 + b1)  # (N, 32)
    a2 = jax.nn.sigmoid(a1 @ W2 + b2)  # (N, 64)
    diff = a2 @ W3 + b3 - y  # (N, 64)
    return jnp.mean(diff * diff)


def mlp_loss(params, x, y):
    """784-256-128-10: Dense, ReLU, Dense, ReLU, Dense, softmax cross-entropy."""
    W1, b1, W2, b2, W3, b3 = params
    a1 = jax.nn.relu(x @ W1 + b1)  # (N, 256)
    a2 = jax.nn.relu(a1 @ W2 + b2)  # (N, 128)
    return _cross_entropy(a2 @ W3 + b3, y)  # (N, 10)


def _conv(x, K, c, padding: int):
    """Cross-correlation, stride 1, as glassnet's Conv2D: x (N, C, H, W), K (F, C,
    KH, KW), c (F,) -> (N, F, H + 2 padding - KH + 1, ...)."""
    pad = [(padding, padding), (padding, padding)]
    out = lax.conv_general_dilated(
        x, K, (1, 1), pad, dimension_numbers=("NCHW", "OIHW", "NCHW")
    )
    return out + c[None, :, None, None]


def _pool(x):
    """2 x 2 max-pooling, stride 2: (N, C, H, W) -> (N, C, H/2, W/2)."""
    N, C, H, W = x.shape
    return x.reshape(N, C, H // 2, 2, W // 2, 2).max(axis=(3, 5))


def lenet_loss(params, x, y):
    """conv 6@5x5, ReLU, pool, conv 16@5x5, ReLU, pool, 120, 84, 10."""
    K1, c1, K2, c2, W1, b1, W2, b2, W3, b3 = params
    p1 = _pool(jax.nn.relu(_conv(x, K1, c1, 0)))  # (N, 6, 12, 12)
    p2 = _pool(jax.nn.relu(_conv(p1, K2, c2, 0)))  # (N, 16, 4, 4)
    f = p2.reshape(x.shape[0], -1)  # (N, 256)
    h1 = jax.nn.relu(f @ W1 + b1)  # (N, 120)
    h2 = jax.nn.relu(h1 @ W2 + b2)  # (N, 84)
    return _cross_entropy(h2 @ W3 + b3, y)  # (N, 10)


def small_cnn_loss(params, x, y):
    """conv 8@3x3 pad 1, ReLU, pool, conv 16@3x3 pad 1, ReLU, pool, Dense 784-10."""
    K1, c1, K2, c2, W, b = params
    p1 = _pool(jax.nn.relu(_conv(x, K1, c1, 1)))  # (N, 8, 14, 14)
    p2 = _pool(jax.nn.relu(_conv(p1, K2, c2, 1)))  # (N, 16, 7, 7)
    return _cross_entropy(p2.reshape(x.shape[0], -1) @ W + b, y)  # (N, 10)


LOSSES = {
    "iris": iris_loss,
    "xor": xor_loss,
    "autoencoder": autoencoder_loss,
    "mlp": mlp_loss,
    "cnn": lenet_loss,
    "cnn_small": small_cnn_loss,
}


# -- optimizers: the state is (params,) for SGD, (params, m, v, t) for Adam ------


def sgd_state(params) -> tuple:
    return (tuple(jnp.asarray(p) for p in params),)


def adam_state(params) -> tuple:
    params = tuple(jnp.asarray(p) for p in params)
    zeros = tuple(jnp.zeros_like(p) for p in params)
    return params, zeros, tuple(jnp.zeros_like(p) for p in params), jnp.zeros((), int)


def sgd_update(lr: float):
    def update(state, grads):
        (params,) = state
        return (tuple(p - lr * g for p, g in zip(params, grads, strict=True)),)

    return update


def adam_update(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    """Adam as references.MLPReference writes it (PyTorch's defaults)."""

    def update(state, grads):
        params, m, v, t = state
        t = t + 1
        m = tuple(beta1 * mi + (1 - beta1) * g for mi, g in zip(m, grads, strict=True))
        v = tuple(
            beta2 * vi + (1 - beta2) * g * g for vi, g in zip(v, grads, strict=True)
        )
        c1, c2 = 1 - beta1**t, 1 - beta2**t  # bias corrections
        params = tuple(
            p - lr * (mi / c1) / (jnp.sqrt(vi / c2) + eps)
            for p, mi, vi in zip(params, m, v, strict=True)
        )
        return params, m, v, t

    return update


OPTIMIZERS = {"sgd": (sgd_state, sgd_update), "adam": (adam_state, adam_update)}


def train_step(loss, update):
    """(state, x, y) -> (state, loss): value_and_grad, then the update."""

    def step(state, x, y):
        value, grads = jax.value_and_grad(loss)(state[0], x, y)
        return update(state, grads), value

    return step


def gather_step(loss, update):
    """(state, X, Y, idx) -> (state, loss): the step on the rows idx of (X, Y),
    the batch gather inside the compiled program."""
    step = train_step(loss, update)
    return lambda state, X, Y, idx: step(state, X[idx], Y[idx])


def scan_epoch(loss, update):
    """(state, X, Y, order) -> (state, mean loss): lax.scan of the step over the
    rows of order (steps, batch), each row one batch of indices."""
    step = gather_step(loss, update)

    def epoch(state, X, Y, order):
        state, losses = lax.scan(lambda s, idx: step(s, X, Y, idx), state, order)
        return state, losses.mean()

    return epoch


# -- compiled, ready to time -----------------------------------------------------


@dataclass
class Compiled:
    """An ahead-of-time compiled function and the seconds its compilation took."""

    run: object
    compile_s: float


def compile_donated(fn, *args) -> Compiled:
    """jax.jit(fn, donate_argnums=0) compiled for args' shapes; args[0] (the
    training state) is donated: XLA writes the new state into its buffers."""
    start = time.perf_counter()
    compiled = jax.jit(fn, donate_argnums=0).lower(*args).compile()
    return Compiled(compiled, time.perf_counter() - start)


class JaxStepper:
    """A case's network in JAX: step(x, y) -> loss, the jitted training step.

    params: arrays in glassnet's order; optimizer: "sgd" or "adam"; x, y: the
    batch the step is compiled for (they stay on the device).
    """

    def __init__(self, case: str, params, optimizer: str, lr: float, x, y):
        make_state, make_update = OPTIMIZERS[optimizer]
        self.state = make_state(params)
        self.x, self.y = jnp.asarray(x), jnp.asarray(y)
        step = train_step(LOSSES[case], make_update(lr))
        self.compiled = compile_donated(step, self.state, self.x, self.y)

    def step(self, x=None, y=None) -> float:
        x = self.x if x is None else jnp.asarray(x)
        y = self.y if y is None else jnp.asarray(y)
        self.state, loss = self.compiled.run(self.state, x, y)
        return float(loss)  # waits for the step, as the others' float(loss) does

    def params(self) -> list[np.ndarray]:
        return [np.asarray(p) for p in self.state[0]]


class JaxEpochs:
    """The mlp network trained by epochs of (X, Y) in a fresh random order:
    epoch_jit() runs a Python loop of jitted steps (the gather inside each),
    epoch_scan() one lax.scan program over the epoch's full batches; a last
    partial batch is one more jitted step in both. Both wait once, at the end.
    """

    def __init__(self, params, X, Y, batch: int, rng, lr=1e-3, scan: bool = True):
        self.state = adam_state(params)
        self.X, self.Y = jnp.asarray(X), jnp.asarray(Y)
        self.batch, self.rng = batch, rng
        N = len(X)
        self.full, rest = divmod(N, batch)
        update = adam_update(lr)
        step = gather_step(mlp_loss, update)
        idx = jnp.zeros(batch, jnp.int32)
        self.step = compile_donated(step, self.state, self.X, self.Y, idx)
        self.last = None
        if rest:
            tail = jnp.zeros(rest, jnp.int32)
            self.last = compile_donated(step, self.state, self.X, self.Y, tail)
        self.scan = None  # scan=False: epoch_jit only, one compilation fewer
        if scan:
            order = jnp.zeros((self.full, batch), jnp.int32)
            self.scan = compile_donated(
                scan_epoch(mlp_loss, update), self.state, self.X, self.Y, order
            )
        self.compile_s = self.step.compile_s + (self.last.compile_s if rest else 0)

    def _order(self) -> np.ndarray:
        return self.rng.permutation(len(self.X)).astype(np.int32)

    def _tail(self, order: np.ndarray) -> None:
        if self.last is not None:
            rows = jnp.asarray(order[self.full * self.batch :])
            self.state, _ = self.last.run(self.state, self.X, self.Y, rows)

    def epoch_jit(self) -> None:
        order = self._order()
        for i in range(self.full):
            rows = jnp.asarray(order[i * self.batch : (i + 1) * self.batch])
            self.state, _ = self.step.run(self.state, self.X, self.Y, rows)
        self._tail(order)
        jax.block_until_ready(self.state)

    def epoch_scan(self) -> None:
        order = self._order()
        rows = jnp.asarray(order[: self.full * self.batch].reshape(self.full, -1))
        self.state, _ = self.scan.run(self.state, self.X, self.Y, rows)
        self._tail(order)
        jax.block_until_ready(self.state)

    def one_step(self) -> None:
        """One jitted step on the first batch: the untimed warm-up call."""
        rows = jnp.arange(self.batch, dtype=jnp.int32)
        self.state, loss = self.step.run(self.state, self.X, self.Y, rows)
        loss.block_until_ready()

    def params(self) -> list[np.ndarray]:
        return [np.asarray(p) for p in self.state[0]]
