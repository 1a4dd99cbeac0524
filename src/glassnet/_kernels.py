"""Small NumPy kernels shared by the hot paths, each kept because it measured faster.

The numbers quoted are from benchmarks/run.py and per-call timings on the
benchmark machine (float32, one BLAS thread); see benchmarks/README.md.
Everything here computes exactly what its docstring says it replaces.
"""

import numpy as np

# np.dot and np.vdot are C functions behind a Python-level __array_function__
# dispatcher (one more frame: 0.16 us of np.dot's 0.45 us at 4 x 2). glassnet's
# hot paths hold NumPy arrays only, so they call the C functions directly.
dot = getattr(np.dot, "_implementation", np.dot)
vdot = getattr(np.vdot, "_implementation", np.vdot)

_ONES: dict = {}
_EYES: dict = {}
_CONSTANTS: dict = {}
_SIGMOID_CONSTANTS: dict = {}  # dtype -> (0.5, 1.0), 0-d arrays of the dtype
_ZEROS: dict = {}  # dtype -> 0.0 as a 0-d array, for binary_log_loss

# Classes up to this count get one-hot targets in SoftmaxCrossEntropy (see one_hot).
ONE_HOT_MAX_CLASSES = 64


def _shared(cache: dict, key, make, *args) -> np.ndarray:
    array = cache.get(key)
    if array is None:
        if len(cache) > 64:  # many batch sizes seen: start over rather than grow
            cache.clear()
        array = cache[key] = make(*args)
        array.flags.writeable = False  # shared by every caller
    return array


def ones(n: int, dtype: np.dtype) -> np.ndarray:
    """A shared read-only vector of n ones, (n,). dtype: a np.dtype instance."""
    array = _ONES.get((n, dtype))
    return array if array is not None else _shared(_ONES, (n, dtype), np.ones, n, dtype)


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """a @ b for a 1-D or 2-D a and a 2-D b, (N, D) @ (D, M) -> (N, M), as np.dot.

    The same BLAS call without np.matmul's generalized-ufunc dispatch: 0.4 to 1 us
    less per call (4 x 2 float32: 0.56 us against 0.94 us for x @ w; 0.6 us
    against 1.7 us for dout @ w.T), which a Dense layer pays 3 to 5 times a step.
    np.dot writes only into a C-contiguous `out` of exactly its result's dtype;
    any other `out` (a float32 gradient of float64 data, a strided view) takes
    np.matmul, which casts as `@` does.
    """
    if out is None:
        return dot(a, b)
    try:
        return dot(a, b, out)
    except ValueError:  # an out np.dot does not take; matmul casts (or explains)
        return np.matmul(a, b, out=out)


def column_sums(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """a.sum(axis=0) for a 2-D a, (N, M) -> (M,), as the product ones(N) @ a.

    BLAS's matrix-vector product is 2-4x faster than NumPy's axis-0 reduction at
    every benchmark size (150 x 5: 1.1 us against 3.5 us; 128 x 256: 2.7 us
    against 5.6 us), and Dense's bias gradient is such a sum.
    """
    column = _ONES.get((a.shape[0], a.dtype))  # ones(N), looked up here: 2 frames less
    if column is None:
        column = ones(a.shape[0], a.dtype)
    return matmul(column, a, out)


def dense_grads(
    x: np.ndarray, dout: np.ndarray, weight_grad: np.ndarray, bias_grad: np.ndarray
) -> None:
    """Dense's parameter gradients, written in place: weight_grad = x.T @ dout,
    (D, N) @ (N, M) -> (D, M), and bias_grad = dout.sum(axis=0), (M,).

    The products of matmul and column_sums in one frame instead of three (0.15 us
    less per layer at XOR's size), with matmul's fallback to np.matmul for a
    gradient np.dot cannot write (another dtype, a strided view).
    """
    column = _ONES.get((len(x), dout.dtype))
    if column is None:
        column = ones(len(x), dout.dtype)
    try:
        dot(x.T, dout, weight_grad)
        dot(column, dout, bias_grad)  # the sum over the batch (see column_sums)
    except ValueError:  # an out np.dot does not take; matmul casts (or explains)
        np.matmul(x.T, dout, out=weight_grad)
        np.matmul(column, dout, out=bias_grad)


def row_sums(a: np.ndarray) -> np.ndarray:
    """a.sum(axis=1) for a 2-D a, (N, K) -> (N,), as the product a @ ones(K).

    A reduction along a short last axis pays NumPy's per-row overhead (150 x 3:
    about 3 us); the matrix-vector product does not.
    """
    return matmul(a, ones(a.shape[1], a.dtype))


def row_max(a: np.ndarray) -> np.ndarray:
    """a.max(axis=1) for a 2-D a, (N, K) -> (N,), from a's transpose made contiguous.

    The softmax's shift (exp cannot overflow). A reduction along a short last
    axis pays NumPy's per-row overhead (150 x 3: 6.6 us; 1024 x 10: 48 us); the
    copy and a reduction over the first axis do not (1.7 us; 6.7 us). Two
    columns (binary softmax, XOR) take one elementwise maximum: 0.6 us, not 1 us.
    """
    if a.shape[1] == 2:
        return np.maximum(a[:, 0], a[:, 1])
    return np.maximum.reduce(np.ascontiguousarray(a.T), axis=0)


def binary_log_loss(logits: np.ndarray) -> np.ndarray:
    """-log softmax(logits) row-wise for two classes: (N, 2) -> (N, 2).

    With two columns, -log p_k = log(1 + exp(z_other - z_k)): one
    np.logaddexp(0, d) of the differences d = logits[:, ::-1] - logits, exact in
    both tails ([1e4, -1e4] gives [0, 2e4]) and never overflowing. Two NumPy
    calls where the general path (shift by the row max, exp, row sums, log, a
    broadcast subtract and a broadcast divide) takes seven, each broadcast about
    0.8 us at 4 x 2. Bought: XOR's fused Softmax + cross-entropy 3 us faster a
    step. (d as the product logits @ [[-1, 1], [1, -1]] would take 0.5 us less,
    but BLAS raises NumPy's invalid-value flag for a -inf logit at N < 4.)
    The probabilities are then exp(-result).
    """
    if logits.dtype.kind != "f":  # integers: the float64 result NumPy would give
        logits = logits.astype(np.float64)
    diff = np.subtract(logits[:, ::-1], logits)  # (N, 2): z_other - z_k
    zero = _ZEROS.get(diff.dtype)
    if zero is None:
        zero = _ZEROS[diff.dtype] = constant(0.0, diff.dtype)
    return np.logaddexp(zero, diff, diff)


def one_hot(labels: np.ndarray, K: int, dtype) -> np.ndarray:
    """Rows of the identity matrix picked by integer labels: (N,) -> (N, K).

    One gather from a cached identity; with one-hot rows the cross-entropy and
    its gradient are whole-array operations (a dot product, a subtraction)
    instead of two fancy-index passes, which cost more at small K.
    """
    eye = _EYES.get((K, dtype))
    if eye is None:
        eye = _shared(_EYES, (K, dtype), np.eye, K, K, 0, dtype)
    return eye.take(labels, axis=0)  # the method: np.take adds 1.3 us


def constant(value: float, dtype: np.dtype) -> np.ndarray:
    """value as a shared read-only 0-d array of dtype (a np.dtype instance).

    A ufunc takes a 0-d array of the operand's dtype in about half the time of a
    Python float, which it must convert on every call (0.26 us against 0.5 us
    for a 4 x 2 float32 array): the tiny networks' steps are made of such calls.
    """
    array = _CONSTANTS.get((value, dtype))
    if array is None:
        array = _shared(_CONSTANTS, (value, dtype), np.array, value, dtype)
    return array


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) elementwise, as 0.5 * (1 + tanh(x / 2)): any shape -> same.

    Exact and overflow-free for any finite x (sigmoid(1000) is exactly 1.0,
    sigmoid(-1000) exactly 0.0), in four passes that keep x's float dtype.
    """
    if x.dtype.kind != "f":  # integers: the float64 result NumPy would give
        x = x.astype(np.float64)
    half_one = _SIGMOID_CONSTANTS.get(x.dtype)  # one lookup, no frame: 0.2 us less
    if half_one is None:
        half_one = _SIGMOID_CONSTANTS[x.dtype] = (
            constant(0.5, x.dtype),
            constant(1.0, x.dtype),
        )
    half, one = half_one
    # out passed by position: a ufunc parses out= as a keyword 0.1 us slower
    out = np.multiply(x, half)
    np.tanh(out, out)
    np.add(out, one, out)
    np.multiply(out, half, out)
    return out


def softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise softmax of a 2-D x: (N, K) -> (N, K), rows summing to 1."""
    shifted = x - x.max(axis=1, keepdims=True)  # exp() cannot overflow
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted
