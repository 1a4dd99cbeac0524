"""What RNN, LSTM and GRU share: the loop over time, both directions, the initial
state and PyTorch's parameter layout. Each cell (rnn.py, lstm.py, gru.py) adds
two methods, one time step forward (`_step`) and the same step backward
(`_step_backward`); this module runs them over the sequence.

Shapes: x (N, T, D) batch-first, H = hidden_size, G = the cell's gate blocks (RNN 1,
LSTM 4, GRU 3). One direction, forward:

    xw = x @ weight_ih.T + bias_ih             every step's input term in one product
    for t = 0 .. T-1:                          xw_t: gate-major (G, N, H), gate g's
        state_t, cache_t = step(xw_t, state_{t-1})   pre-activation block [g]
                                               state = h, or (h, c)

and backward, given dhs = dL/dh_t from the layer's output (N, T, H):

    dstate = 0                                 nothing flows back from after step T-1
    for t = T-1 .. 0:
        dh = dhs[:, t] + dstate.h              h_t reaches the loss through the output
        dxw_t, dhw_t, dstate = step_backward(dh, cache_t)       and through step t+1
                                               dxw_t, dhw_t: (N, G*H), gates side by
                                               side, as the products below take them
    dweight_ih = sum_t dxw_t.T @ x_t           (G*H, D)  one product over all steps
    dweight_hh = sum_t dhw_t.T @ h_{t-1}       (G*H, H)  likewise
    dbias_ih = sum_t dxw_t,  dbias_hh = sum_t dhw_t
    dx = dxw @ weight_ih                       (N, T, G*H) @ (G*H, D) -> (N, T, D)

dxw_t and dhw_t are the gradients of the two products x_t @ weight_ih.T + bias_ih and
h_{t-1} @ weight_hh.T + bias_hh; they are equal for RNN and LSTM, which add the two,
and differ for GRU, whose reset gate multiplies the second. Every gradient comes
from this loop: "backprop through time" is the chain rule along it. Internally the
loop is time-major, (T, N, ...), so each step reads and writes contiguous blocks
(see _run). LSTM replaces the two loops by its own fused ones (same math and
cache names, lstm.py) unless a subclass redefines its step.
"""

from __future__ import annotations  # np.random in signatures: loaded on first use

import numpy as np

from glassnet._validation import check_float_dtype, check_positive_int
from glassnet.errors import ArgumentTypeError, ConfigError, ShapeError
from glassnet.nn.initializers import generator_from_state
from glassnet.nn.layers.base import Layer
from glassnet.nn.parameter import Parameter

_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


class _Recurrent(Layer):
    """The shared part of RNN, LSTM and GRU (see the module docstring).

    Parameters, per direction, named and shaped as PyTorch's (torch's
    "weight_ih_l0" is glassnet's "weight_ih", "weight_ih_l0_reverse" is
    "weight_ih_reverse"): weight_ih (G*H, D), weight_hh (G*H, H), bias_ih (G*H,),
    bias_hh (G*H,), all drawn from U(-1/sqrt(H), 1/sqrt(H)) as in PyTorch.
    """

    _GATES = 1  # G: blocks of H rows stacked in weight_ih and weight_hh
    _STATE = ("h",)  # what one step hands the next; LSTM: ("h", "c")
    _CACHED: tuple[str, ...] = ()  # what _step keeps for _step_backward, by name

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        return_sequences: bool = False,
        bidirectional: bool = False,
        rng: np.random.Generator | None = None,
        dtype=None,
    ) -> None:
        name = type(self).__name__
        check_positive_int(name, input_size=input_size, hidden_size=hidden_size)
        for flag, value in (
            ("return_sequences", return_sequences),
            ("bidirectional", bidirectional),
        ):
            if not isinstance(value, bool):
                raise ConfigError(
                    f"{name}: {flag} must be True or False, got {value!r}"
                )
        self.input_size, self.hidden_size = input_size, hidden_size
        self.return_sequences, self.bidirectional = return_sequences, bidirectional
        self._own_dtype = dtype is not None
        # with its own rng, the layer keeps the generator's state to draw the same
        # numbers again if a model changes only the dtype (as Dense does)
        self._own_rng = None if rng is None else rng.bit_generator.state
        dt = check_float_dtype(name, np.float32 if dtype is None else dtype)
        GH, D, H = self._GATES * hidden_size, input_size, hidden_size
        shapes = {"weight_ih": (GH, D), "weight_hh": (GH, H), "bias_ih": (GH,)}
        shapes["bias_hh"] = (GH,)
        for suffix in self._suffixes():
            for base in _NAMES:
                p = Parameter(np.zeros(shapes[base], dt), base + suffix)
                setattr(self, base + suffix, p)
        self._draw(rng if rng is not None else np.random.default_rng(), dt)

    # -- parameters and initialisation ------------------------------------------

    def _suffixes(self) -> tuple[str, ...]:
        """ "" for the forward direction, "_reverse" for the backward one."""
        return ("", "_reverse") if self.bidirectional else ("",)

    def _params(self, suffix: str) -> list[Parameter]:
        """weight_ih, weight_hh, bias_ih, bias_hh of one direction."""
        return [getattr(self, base + suffix) for base in _NAMES]

    def parameters(self) -> list[Parameter]:
        return [p for suffix in self._suffixes() for p in self._params(suffix)]

    def initialize(self, rng: np.random.Generator, dtype) -> None:
        """Redraw from a model's `rng` unless this layer got its own generator;
        take the model's `dtype` unless it got its own."""
        dtype = self.weight_ih.data.dtype if self._own_dtype else np.dtype(dtype)
        if self._own_rng is None:
            self._draw(rng, dtype)
        elif dtype != self.weight_ih.data.dtype:
            self._draw(generator_from_state(self._own_rng), dtype)

    def _draw(self, rng: np.random.Generator, dtype) -> None:
        bound = 1.0 / np.sqrt(self.hidden_size)  # PyTorch's init for every tensor
        for p in self.parameters():
            p.data = rng.uniform(-bound, bound, p.shape).astype(dtype)
            p.grad = np.zeros(p.shape, dtype)

    # -- forward and backward over the sequence ------------------------------------

    def forward(self, x) -> np.ndarray:
        """x (N, T, D) -> (N, T, dirs*H) with return_sequences, else (N, dirs*H).

        x may also be a tuple (x, initial state): see the class docstring.
        """
        x, initial, given = self._checked_input(x)
        caches, hs = [], []
        for d, suffix in enumerate(self._suffixes()):
            w_ih, w_hh, b_ih, b_hh = (p.data for p in self._params(suffix))
            xs = x if d == 0 else x[:, ::-1]  # the reverse direction reads t = T-1..0
            h_d, cache = self._run(xs, initial[d], w_ih, w_hh, b_ih, b_hh)
            hs.append(h_d if d == 0 else h_d[::-1])  # (T, N, H) in time order
            caches.append(cache)
        self._cache = (caches, given, x.shape)
        if self.return_sequences:
            out = hs[0] if len(hs) == 1 else np.concatenate(hs, axis=2)  # (T, N, dH)
            return np.ascontiguousarray(out.transpose(1, 0, 2))  # (N, T, dirs*H)
        # each direction's final state: the forward one at t = T-1, the reverse
        # one at t = 0 (PyTorch's h_n, Keras's Bidirectional)
        last = [hs[0][-1]] + [h[0] for h in hs[1:]]  # each (N, H)
        return last[0].copy() if len(last) == 1 else np.concatenate(last, axis=1)

    def backward(self, dout: np.ndarray):
        """dout, the output's shape -> dx (N, T, D); with an initial state given,
        (dx, d(initial state)), the state's gradient in its own shape."""
        return self._backward(dout, need_dx=True)

    def backward_params(self, dout: np.ndarray) -> None:
        # as the first layer (fit): the parameter gradients without dL/dx
        self._backward(dout, need_dx=False)

    def _backward(self, dout: np.ndarray, need_dx: bool):
        caches, given, (N, T, D) = self._cached()
        H = self.hidden_size
        dirs = len(caches)
        expected = (N, T, dirs * H) if self.return_sequences else (N, dirs * H)
        if dout.shape != expected:
            raise ShapeError(
                f"{self._me()}.backward: dout must have the output's shape "
                f"{expected}, got {dout.shape}"
            )
        dx, dinitial = None, []
        for d, suffix in enumerate(self._suffixes()):
            params = self._params(suffix)
            part = dout[..., d * H : (d + 1) * H]  # this direction's slice
            if self.return_sequences:
                dhs = part.transpose(1, 0, 2)  # (T, N, H), time-major like the cache
                dhs = dhs if d == 0 else dhs[::-1]  # processing order, t = T-1..0
            else:  # only the final state, processing step T-1, reached the output
                dhs = part  # (N, H)
            dx_d, dstate0, grads = self._run_backward(
                dhs, caches[d], params[0].data, params[1].data, need_dx
            )
            for p, g in zip(params, grads, strict=True):
                p.grad = g
            if need_dx:
                dx_d = dx_d if d == 0 else dx_d[:, ::-1]  # back into time order
                dx = dx_d if dx is None else dx + dx_d
            dinitial.append(dstate0)
        if not need_dx:
            return None
        dx = np.ascontiguousarray(dx)  # (N, T, D) from time-major rows
        if given is None:
            return dx
        return dx, self._initial_grad(dinitial, given)

    def _run(self, x, state, w_ih, w_hh, b_ih, b_hh):
        """One direction over time: x (N, T, D) -> hs (T, N, H), h_t for every t
        in processing order, and the cache its backward reads: x's rows, h_-1 and
        every h_t, and each quantity the cell keeps (_CACHED), stacked over time,
        (T, N, H).

        Speed: everything is time-major, (T, N, ...), so each step reads and
        writes contiguous (N, ...) blocks, and the products over all steps
        (x @ weight_ih.T here, the weight gradients in backward) take the rows
        (T*N, ...) as they lie; with batch-major xw, every step's slice was
        strided. With the cells' gate-major blocks: LSTM(32, 128), N 64, T 40,
        forward + backward 14.7 -> 13.3 ms on one thread."""
        N, T, D = x.shape
        G, H = self._GATES, self.hidden_size
        x_rows = x.transpose(1, 0, 2).reshape(T * N, D)  # (T*N, D), a copy
        # every step's input term at once, one product per gate over the rows
        # (T*N, D), where a 3-D x @ w ran N small ones (1.6x slower at N, T, D =
        # 64, 40, 64); gate-major, (G, T*N, H): each gate's (N, H) block at step
        # t is contiguous, where a column slice of (N, G*H) made every
        # elementwise pass of the cell 3x slower (strided rows)
        xw = np.matmul(x_rows, w_ih.reshape(G, H, D).transpose(0, 2, 1))
        xw += b_ih.reshape(G, 1, H)
        xw = xw.reshape(G, T, N, H)
        if state is None:  # no initial state given: zeros, as in PyTorch and Keras
            state = tuple(np.zeros((N, H), xw.dtype) for _ in self._STATE)
        # h_-1 (the initial state) and every h_t in one buffer: backward reads
        # h_{t-1} for all t as the view h_all[:-1], without a concatenation
        h_all = np.empty((T + 1, N, H), dtype=xw.dtype)
        h_all[0] = state[0]
        steps = []
        for t in range(T):
            state, step_cache = self._step(xw[:, t], state, w_hh, b_hh)
            h_all[t + 1] = state[0]
            steps.append(step_cache)
        # one (T, N, H) array per cached quantity: what summary shows, by name
        stacked = [np.stack(q) for q in zip(*steps, strict=True)]  # each (T, N, H)
        cache = dict(zip(self._CACHED, stacked, strict=True))
        cache.update(x_rows=x_rows, h0=h_all[0], h_all=h_all)
        return h_all[1:], cache

    def _run_backward(self, dhs, cache, w_ih, w_hh, need_dx):
        """One direction back through time: dhs, dL/dh_t from the output in
        processing order, (T, N, H), or (N, H) when only the last step's h
        reached it -> dx (N, T, D) or None, dL/d(initial state), and the
        gradients of weight_ih, weight_hh, bias_ih, bias_hh."""
        x_rows, h_all = cache["x_rows"], cache["h_all"]
        steps = [cache[name] for name in self._CACHED]  # each (T, N, H)
        T1, N, H = h_all.shape
        T, D, GH = T1 - 1, x_rows.shape[1], w_hh.shape[0]
        dxw = np.empty((T, N, GH), dtype=h_all.dtype)  # dL/d(x_t @ w_ih.T + b_ih)
        dhw = None  # dL/d(h_t-1 @ w_hh.T + b_hh): dxw itself while the cell's are
        dstate = tuple(np.zeros((N, H), h_all.dtype) for _ in self._STATE)
        sequences = dhs.ndim == 3
        for t in reversed(range(T)):
            if sequences:
                dh = dhs[t] + dstate[0]  # the output's gradient + step t+1's
            else:  # the output saw h_{T-1} only; nothing comes after it
                dh = dhs if t == T - 1 else dstate[0]
            dxw_t, dhw_t, dstate = self._step_backward(
                (dh, *dstate[1:]), [a[t] for a in steps], w_hh
            )  # dxw_t, dhw_t: (N, G*H)
            dxw[t] = dxw_t
            if dhw_t is not dxw_t and dhw is None:  # GRU: the two differ
                dhw = dxw.copy()  # (steps after t: equal so far)
            if dhw is not None:
                dhw[t] = dhw_t
        dhw = dxw if dhw is None else dhw
        dxw_rows, dhw_rows = dxw.reshape(T * N, GH), dhw.reshape(T * N, GH)
        grads = (
            dxw_rows.T @ x_rows,  # (G*H, T*N) @ (T*N, D): the sum over t and n
            dhw_rows.T @ h_all[:-1].reshape(T * N, H),  # (G*H, T*N) @ (T*N, H)
            dxw_rows.sum(axis=0),  # (G*H,)
            dhw_rows.sum(axis=0),  # (G*H,)
        )
        if not need_dx:
            return None, dstate, grads
        dx = (dxw_rows @ w_ih).reshape(T, N, D)  # (T*N, G*H) @ (G*H, D)
        return dx.transpose(1, 0, 2), dstate, grads  # (N, T, D), a view

    # -- the cell: defined by RNN, LSTM and GRU ----------------------------------

    def _step(self, xw_t, state, w_hh, b_hh):  # pragma: no cover - abstract
        raise NotImplementedError

    def _step_backward(self, dstate, step_cache, w_hh):  # pragma: no cover
        raise NotImplementedError

    # -- input checks, the initial state, configuration ------------------------------

    def _me(self) -> str:
        return f"{type(self).__name__}({self.input_size}, {self.hidden_size})"

    def _checked_input(self, x):
        """(x (N, T, D) as an array, one initial state per direction (None for
        zeros), the initial state's layout as given or None)."""
        state = None
        if isinstance(x, tuple):
            if len(x) != 2:
                raise ArgumentTypeError(
                    f"{self._me()}: a tuple input must be (x, initial_state), got a "
                    f"tuple of {len(x)}"
                )
            x, state = x
        x = np.asarray(x)
        if x.dtype.kind not in "fiub":
            raise ArgumentTypeError(
                f"{self._me()} expects a numeric array (N, T, D), got dtype {x.dtype}"
            )
        if x.dtype.kind != "f":
            x = x.astype(self.weight_ih.data.dtype)
        D = self.input_size
        if x.ndim != 3 or x.shape[2] != D or x.shape[1] < 1:
            raise ShapeError(self._shape_message(x.shape))
        dirs = len(self._suffixes())
        if state is None:
            return x, [None] * dirs, None
        return x, *self._checked_state(state, x.shape[0], dirs)

    def _checked_state(self, state, N: int, dirs: int):
        """The initial state as one tuple per direction, and how it was given."""
        H = self.hidden_size
        two = len(self._STATE) == 2
        if two and not (isinstance(state, tuple) and len(state) == 2):
            raise ArgumentTypeError(
                f"{self._me()}: the initial state is a pair (h0, c0), got "
                f"{type(state).__name__}"
            )
        parts = state if two else (state,)
        shapes = [(dirs, N, H)] + ([(N, H)] if dirs == 1 else [])
        arrays = []
        for name, part in zip(self._STATE, parts, strict=True):
            part = np.asarray(part)
            if part.shape not in shapes or part.dtype.kind != "f":
                allowed = " or ".join(str(s) for s in shapes)
                raise ShapeError(
                    f"{self._me()}: initial {name}0 must be a float array of shape "
                    f"{allowed} (directions, N, H), got {part.shape} {part.dtype}"
                )
            arrays.append(part)
        per_direction = [
            tuple(a[d] if a.ndim == 3 else a for a in arrays) for d in range(dirs)
        ]
        return per_direction, tuple(a.ndim for a in arrays)

    def _initial_grad(self, dinitial: list[tuple], ndims: tuple[int, ...]):
        """dL/d(initial state) in the layout it was given: h0's gradient, or the
        pair (dh0, dc0); each (N, H) or (directions, N, H) as given."""
        grads = []
        for i, ndim in enumerate(ndims):
            per_direction = [d[i] for d in dinitial]  # each (N, H)
            grads.append(per_direction[0] if ndim == 2 else np.stack(per_direction))
        return tuple(grads) if len(grads) == 2 else grads[0]

    def _shape_message(self, shape) -> str:
        D = self.input_size
        got = "(N, " + ", ".join(str(s) for s in shape[1:]) + ")"
        msg = f"{self._me()} expects input of shape (N, T, {D}), got {got}"
        if len(shape) == 2:
            msg += (
                "; a sequence is (N, T, D): for token ids (N, T) put an Embedding "
                "first, for one feature per step use x[..., None]"
            )
        elif len(shape) == 3 and shape[1] < 1:
            msg += "; a sequence needs at least one time step"
        elif len(shape) == 3:
            msg += f"; input_size should be {shape[2]}"
        return msg

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(input_shape)
        if len(shape) != 2 or shape[1] != self.input_size:
            raise ShapeError(self._shape_message((None, *shape)))
        width = len(self._suffixes()) * self.hidden_size
        return (shape[0], width) if self.return_sequences else (width,)

    def get_config(self) -> dict:
        """Constructor arguments, rng and dtype aside (a model file has one dtype)."""
        return {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "return_sequences": self.return_sequences,
            "bidirectional": self.bidirectional,
        }
