"""Optimizers, simplest first: SGD, RMSprop, Adam, AdamW; and OPTIMIZERS.

An optimizer is built without parameters. `fit` binds it to a model's
parameters, or you call `step(model.parameters())` yourself after backward.
The update rules and their defaults follow PyTorch's torch.optim, and the
tests compare against it. Each update below is a handful of whole-buffer
in-place operations, however many layers the model has: see _FlatParameters,
the one place that knows how.

Every optimizer also takes clipnorm= and clipvalue= (gradient clipping, applied
in step() before the update, on the same flat buffers): see Optimizer.

Every few steps the state (moments, velocities) is kept out of the subnormal
range, which some CPUs process many times slower: see FLUSH_BELOW.
"""

import math
from dataclasses import dataclass

import numpy as np

from glassnet._kernels import constant
from glassnet._validation import check_in_range, check_positive_float
from glassnet.errors import ArgumentTypeError, CallOrderError, ConfigError, ShapeError
from glassnet.nn.parameter import Parameter

# -- keeping the state out of the subnormal range -------------------------------
#
# A state entry that stops receiving gradient decays geometrically: Adam's m by
# beta1 each step, a momentum buffer by momentum, RMSprop's square average by
# alpha. A dead ReLU unit's weights get gradients of exactly 0, so their moments
# fall, within a few hundred steps, below the smallest normal float (float32:
# 1.18e-38) into the subnormal range, where some CPUs take a slow microcode path
# for every operation that touches them (issue 16 measured mlp epochs going from
# 0.77 s to 2.1 s with 118,000 of 235,000 entries of m subnormal; XLA flushes them
# to zero in hardware, NumPy cannot). So every few steps each state entry with
# |x| < FLUSH_BELOW[dtype] is set to exactly 0 (_Group.flush_tiny_state).
#
# What changes: only those entries, and only at a flush. For float32 (1e-34):
# a flushed m moved its parameter by at most lr * 1e-34 / eps / (1 - beta1) =
# 1e-25 lr (defaults), below half an ulp of any parameter |p| > 1e-17 (lr <= 1);
# a flushed v or square average (sqrt < 1e-17) changes Adam's denominator
# sqrt(v) / sqrt(1 - beta2**t) + eps by less than 3.2e-16, under half a float32
# ulp of eps = 1e-8 (4.4e-16); a flushed velocity moves its parameter by at most
# lr * 1e-34. float64 (1e-300) is further still from mattering. Other dtypes are
# left alone. The PyTorch oracle tests pass unchanged, and
# tests/test_optimizers_subnormal.py checks that values >= FLUSH_BELOW are kept bit
# for bit and that thousands of steps with and without flushing end with
# bit-identical parameters. On the AMD EPYC of benchmarks/README.md subnormals are
# cheap (Adam's step 7 % slower with 80 % of m subnormal); on CPUs with a microcode
# assist per subnormal operation they cost far more.
#
# How often: a value the flush keeps is >= FLUSH_BELOW and, with no gradient,
# loses a factor d (the fastest decay among the state's) per step, so it stays
# normal for log(FLUSH_BELOW / tiny) / log(1 / d) steps: 85 steps for float32 and
# d = 0.9, 167 for float64. Flushing every that many steps (capped at 1000) keeps
# decaying state out of the subnormal range at a cost of ~3 passes per state array
# per flush (< 0.1 pass per step). Values that enter the range directly (a
# product of tiny gradients, g**2 < tiny for |g| < 1e-19) live until the next
# flush.
FLUSH_BELOW = {np.dtype(np.float32): 1e-34, np.dtype(np.float64): 1e-300}
_MAX_FLUSH_INTERVAL = 1000


def flush_interval(dtype: np.dtype, decays: tuple[float, ...]) -> int:
    """Steps between flushes for state of this dtype decaying by these factors
    per step (0 = never: no threshold for the dtype, or no state that decays)."""
    decays = [float(d) for d in decays if 0.0 < d < 1.0]
    if not decays or dtype not in FLUSH_BELOW:
        return 0
    margin = math.log(FLUSH_BELOW[dtype] / np.finfo(dtype).tiny)
    steps = margin / -math.log(min(decays))
    return max(1, min(_MAX_FLUSH_INTERVAL, math.floor(steps)))


class _Group:
    """The parameters of one dtype, gathered: data and grad buffers (P,), a
    workspace tmp (P,) and the optimizer's state arrays (P,) by name;
    flush_every: steps between flushes of tiny state entries (0: never)."""

    __slots__ = ("data", "grad", "tmp", "state", "flush_every")

    def __init__(
        self,
        dtype,
        total: int,
        state_names: tuple[str, ...],
        decays: tuple[float, ...] = (),
    ) -> None:
        self.data = np.empty(total, dtype)
        self.grad = np.empty(total, dtype)
        self.tmp = np.empty(total, dtype)  # workspace reused by every step
        self.state = {name: np.zeros(total, dtype) for name in state_names}
        self.flush_every = flush_interval(self.data.dtype, decays) if state_names else 0

    def flush_tiny_state(self) -> None:
        """Set every state entry with |x| < FLUSH_BELOW[dtype] to 0 (see above)."""
        below = FLUSH_BELOW[self.data.dtype]
        for x in self.state.values():
            np.abs(x, out=self.tmp)
            np.copyto(x, 0, where=self.tmp < below)


class _FlatParameters:
    """The optimizer's speed trick, kept in this one class.

    The bound parameters' data and grad become views into one contiguous data
    buffer and one grad buffer per dtype, so an update is a handful of
    whole-buffer NumPy operations however many layers the model has, instead of
    a loop of small per-parameter ones whose per-call overhead dominates at small
    sizes (Adam on the 2-2-2 XOR network: 12 operations a step instead of 48).

    To everyone else the parameters stay ordinary arrays: a layer may bind
    p.grad to a new array every step (p.grad = x.T @ dout), a user may assign
    p.data, the model may be pickled, copied, sent through dask or Ray, or bound
    by another optimizer. `refresh`, called before every update, checks by
    identity that each parameter still holds its views, and gathers the ones
    that do not again, copying their current values in; the optimizer's state
    (moments) and step count are kept.
    """

    def __init__(
        self,
        params: list[Parameter],
        state_names: tuple[str, ...],
        decays: tuple[float, ...] = (),
    ) -> None:
        for i, p in enumerate(params):
            if not isinstance(p, Parameter):
                raise ArgumentTypeError(
                    f"optimizer: parameter {i} must be a glassnet Parameter "
                    f"(model.parameters()), got {type(p).__name__}"
                )
        self.params = params
        self.state_names = state_names
        self.decays = decays  # the state's decay factors per step, for flushing
        self._gather([None] * len(params))

    def _gather(self, kept: list[dict | None]) -> None:
        """Build the buffers from the parameters' current values and point each
        parameter at its views; `kept` holds each parameter's state to restore."""
        by_dtype: dict[np.dtype, list[int]] = {}
        for i, p in enumerate(self.params):
            by_dtype.setdefault(p.data.dtype, []).append(i)
        self.groups: list[_Group] = []
        self._slots: list[tuple[_Group, slice]] = [None] * len(self.params)
        held = [None] * len(self.params)
        for dtype, indices in by_dtype.items():
            total = sum(self.params[i].size for i in indices)
            group = _Group(dtype, total, self.state_names, self.decays)
            offset = 0
            for i in indices:
                p = self.params[i]
                span = slice(offset, offset + p.size)
                offset = span.stop
                group.data[span] = p.data.ravel()
                group.grad[span] = p.grad.ravel()
                for name, values in (kept[i] or {}).items():
                    group.state[name][span] = values
                data, grad = group.data[span], group.grad[span]
                p.data, p.grad = data.reshape(p.shape), grad.reshape(p.shape)
                held[i] = (p, p.data, p.grad)
                self._slots[i] = (group, span)
            self.groups.append(group)
        self._held = held

    def refresh(self) -> None:
        """Gather again every parameter that no longer holds its views."""
        for p, data, grad in self._held:
            if p.data is not data or p.grad is not grad:
                break
        else:
            return
        if any(p.data.dtype != data.dtype for p, data, _ in self._held):
            self._gather(self._state_by_parameter())  # a dtype changed: new buffers
            return
        for p, data, grad in self._held:
            if p.data is not data:
                np.copyto(data, p.data)
                p.data = data
            if p.grad is not grad:
                np.copyto(grad, p.grad)
                p.grad = grad

    def _state_by_parameter(self) -> list[dict]:
        """Each parameter's slice of every state array (copies)."""
        return [
            {name: arr[span].copy() for name, arr in group.state.items()}
            for group, span in self._slots
        ]

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The state by name, each (P,) in parameter order: the live arrays when
        every parameter has one dtype, else a copy in the widest dtype."""
        if len(self.groups) == 1:
            return dict(self.groups[0].state)
        per_param = self._state_by_parameter()
        return {
            name: np.concatenate([s[name] for s in per_param])
            if per_param
            else np.zeros(0)
            for name in self.state_names
        }

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Copy state arrays (P,) in parameter order into the optimizer's own."""
        total = sum(p.size for p in self.params)
        missing = [name for name in self.state_names if name not in arrays]
        if missing:
            raise ConfigError(
                f"optimizer state: expected arrays {list(self.state_names)}, "
                f"missing {missing}"
            )
        for name in self.state_names:
            values = np.asarray(arrays[name])
            if values.shape != (total,):
                raise ShapeError(
                    f"optimizer state {name!r}: expected shape ({total},), one value "
                    f"per parameter entry, got {values.shape}"
                )
            offset = 0
            for group, span in self._slots:
                n = span.stop - span.start
                group.state[name][span] = values[offset : offset + n]
                offset += n

    def __getstate__(self) -> dict:
        # Pickled views come back as separate arrays, no longer views of the
        # buffers: keep each parameter's state and gather again on the way back.
        return {
            "params": self.params,
            "state_names": self.state_names,
            "decays": self.decays,
            "state": self._state_by_parameter(),
        }

    def __setstate__(self, state: dict) -> None:
        self.params, self.state_names = state["params"], state["state_names"]
        self.decays = state.get("decays", ())  # pickled before flushing existed
        self._gather(state["state"])  # copies: writable even if those were not


@dataclass(frozen=True)
class ClipInfo:
    """What gradient clipping saw and did in the last step (optimizer.last_clip).

    norm: the global L2 norm of every gradient entry before any clipping;
    max_abs: the largest |gradient entry| before clipping (None without clipvalue);
    scale: the factor clipnorm multiplied the gradients by (1.0: untouched);
    clipped: True when clipping changed the gradients (by norm or by value).
    """

    norm: float
    max_abs: float | None
    scale: float
    clipped: bool


def _check_clip(owner: str, clipnorm, clipvalue) -> None:
    for name, value in (("clipnorm", clipnorm), ("clipvalue", clipvalue)):
        if value is not None:
            check_positive_float(owner, **{name: value})


class Optimizer:
    """Base class. A subclass names its per-parameter state arrays in
    _state_names() and defines _update(data, grad, tmp, state), which updates
    one flat data buffer in place from its grad buffer (tmp: a workspace of the
    same shape; state: {name: array}, as named).

    Gradient clipping, every optimizer's keyword options, applied in step()
    before the update (the parameters' .grad are clipped in place, as PyTorch's
    utilities do):

        clipvalue=v   every gradient entry clipped to [-v, v]
                      (torch.nn.utils.clip_grad_value_)
        clipnorm=c    with norm = the L2 norm of all gradients together (one
                      global norm over every parameter, not one per parameter):
                      scale = c / (norm + 1e-6), and every gradient is multiplied
                      by scale when scale < 1 (torch.nn.utils.clip_grad_norm_)

    With both, values are clipped first, so the update's norm is at most c.
    optimizer.last_clip (a ClipInfo: the norm before clipping, whether it
    triggered) describes the last step; None without clipping.
    """

    def __new__(cls, *args, **kwargs):
        # SGD(model.parameters(), lr=0.1), the PyTorch habit: say how it is done here
        # (Python's own error would be "got multiple values for argument 'lr'")
        first = args[0] if args else None
        if isinstance(first, (list, tuple, dict)) or hasattr(first, "__next__"):
            raise ArgumentTypeError(
                f"{cls.__name__}: optimizers are built without parameters; write "
                f"{cls.__name__}(lr=...) and pass it to fit (which binds it to the "
                "model's parameters), or call opt.step(model.parameters()) after "
                "backward"
            )
        return super().__new__(cls)

    def __init__(
        self,
        lr: float,
        *,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
    ) -> None:
        check_positive_float(type(self).__name__, lr=lr)
        _check_clip(type(self).__name__, clipnorm, clipvalue)
        self.lr = float(lr)
        self.clipnorm = None if clipnorm is None else float(clipnorm)
        self.clipvalue = None if clipvalue is None else float(clipvalue)
        self.last_clip: ClipInfo | None = None
        self._flat: _FlatParameters | None = None
        self.t = 0  # number of steps taken

    @property
    def params(self) -> list[Parameter]:
        """The parameters this optimizer is bound to ([] before binding)."""
        return [] if self._flat is None else list(self._flat.params)

    def bind(self, params) -> "Optimizer":
        """Attach to params (a list of Parameter) and reset the optimizer state."""
        self._flat = _FlatParameters(
            list(params), self._state_names(), self._state_decays()
        )
        self.t = 0
        return self

    def step(self, params=None) -> None:
        """Update the parameters from their .grad.

        params: the parameters to update. The first call binds the optimizer to
        them (bind); later calls with the same parameters (a new list of them is
        fine) continue with the state (moments, step count). Without params,
        the bound parameters are updated.
        """
        flat = self._flat
        if params is not None:
            if type(params) is not list:
                params = list(params)
            try:  # the same Parameters? (a C loop; Parameter compares by identity)
                same = flat is not None and params == flat.params
            except ValueError:  # an array among params: not the bound parameters
                same = False
            if not same:
                flat = self.bind(params)._flat
        elif flat is None:
            raise CallOrderError(
                f"{type(self).__name__}.step(): no parameters; call "
                "step(model.parameters()) or bind(...) first"
            )
        flat.refresh()
        if self.clipnorm is not None or self.clipvalue is not None:
            self.last_clip = self._clip(flat.groups)
        self.t += 1
        for group in flat.groups:
            self._update(group.data, group.grad, group.tmp, group.state)
            if group.flush_every and self.t % group.flush_every == 0:
                group.flush_tiny_state()  # see FLUSH_BELOW

    def _clip(self, groups: list[_Group]) -> ClipInfo:
        """Clip the flat grad buffers in place (see the class docstring): one
        dot product per buffer for the norm, one in-place pass to scale or clip."""
        norm = math.sqrt(sum(float(np.dot(g.grad, g.grad)) for g in groups))
        max_abs, clipped = None, False
        if self.clipvalue is not None:
            v = self.clipvalue
            peaks = [max(g.grad.max(), -g.grad.min()) for g in groups if g.grad.size]
            max_abs = float(max(peaks, default=0.0))
            if max_abs > v:
                for g in groups:
                    np.clip(g.grad, -v, v, out=g.grad)
                clipped = True
        scale = 1.0
        if self.clipnorm is not None:
            after = norm  # the norm the values' clipping left
            if clipped:
                after = math.sqrt(sum(float(np.dot(g.grad, g.grad)) for g in groups))
            coefficient = self.clipnorm / (after + 1e-6)  # PyTorch's formula
            if coefficient < 1.0:
                scale, clipped = coefficient, True
                for g in groups:
                    g.grad *= coefficient
        return ClipInfo(norm, max_abs, scale, clipped)

    def _state_names(self) -> tuple[str, ...]:
        return ()

    def _state_decays(self) -> tuple[float, ...]:
        """The factors the state decays by per step without gradient (see
        FLUSH_BELOW); taken when the optimizer is bound."""
        return ()

    def _update(self, data, grad, tmp, state: dict) -> None:
        raise NotImplementedError

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The optimizer's per-parameter state (moments, velocities) by name, each
        of shape (P,), P = the number of parameter entries, in parameter order.
        When every parameter has one dtype these are the live arrays (writing to
        them changes the state); with several dtypes, a copy."""
        return {} if self._flat is None else self._flat.state_arrays()

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Set the bound optimizer's state from arrays shaped as state_arrays()."""
        if self._flat is None:
            raise CallOrderError(
                f"{type(self).__name__}.load_state_arrays(): bind the optimizer first"
            )
        self._flat.load_state_arrays(arrays)

    def get_config(self) -> dict:
        return {"lr": self.lr, **self._clip_config()}

    def _clip_config(self) -> dict:
        """clipnorm and clipvalue, those that are set (for get_config)."""
        options = {"clipnorm": self.clipnorm, "clipvalue": self.clipvalue}
        return {k: v for k, v in options.items() if v is not None}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _state(name: str) -> property:
    """A read-only attribute for one state array (opt.m, opt.velocity, ...);
    None before binding or when the configuration has no such state."""
    return property(lambda self: self.state_arrays().get(name), doc=f"state {name!r}")


class SGD(Optimizer):
    """Stochastic gradient descent, as torch.optim.SGD (dampening 0).

    g = grad + weight_decay * p
    v = momentum * v + g                       (if momentum > 0)
    g = g + momentum * v if nesterov else v    (if momentum > 0)
    p = p - lr * g
    """

    def __init__(
        self,
        lr: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        *,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
    ) -> None:
        super().__init__(lr, clipnorm=clipnorm, clipvalue=clipvalue)
        check_in_range("SGD", "momentum", momentum, 0.0, 1.0)
        check_in_range("SGD", "weight_decay", weight_decay, 0.0, np.inf)
        if nesterov and momentum == 0:
            raise ConfigError("SGD: nesterov=True needs momentum > 0, got momentum=0")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)
        self.weight_decay = float(weight_decay)

    velocity = _state("velocity")

    def _state_names(self) -> tuple[str, ...]:
        return ("velocity",) if self.momentum else ()

    def _state_decays(self) -> tuple[float, ...]:
        return (self.momentum,)

    def _update(self, data, grad, tmp, state: dict) -> None:
        g = grad
        if self.weight_decay:
            g = np.multiply(data, self.weight_decay, out=tmp)
            g += grad
        if self.momentum:
            v = state["velocity"]
            v *= self.momentum
            v += g
            if not self.nesterov:
                g = v
            elif g is grad:
                g = np.multiply(v, self.momentum, out=tmp)
                g += grad
            else:
                g += v * self.momentum
        # lr as a 0-d array of the dtype, out by position: 0.4 us less than
        # np.multiply(g, self.lr, out=tmp) at XOR's size, the same float32 product
        lr = constant(self.lr, tmp.dtype) if tmp.dtype.kind == "f" else self.lr
        np.multiply(g, lr, tmp)
        np.subtract(data, tmp, data)

    def get_config(self) -> dict:
        return {
            "lr": self.lr,
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "weight_decay": self.weight_decay,
            **self._clip_config(),
        }


class RMSprop(Optimizer):
    """RMSprop, as torch.optim.RMSprop (not centered).

    g = grad + weight_decay * p
    s = alpha * s + (1 - alpha) * g**2
    v = momentum * v + g / (sqrt(s) + eps); p -= lr * v   (momentum > 0)
    p = p - lr * g / (sqrt(s) + eps)                       (momentum == 0)
    """

    def __init__(
        self,
        lr: float = 0.01,
        alpha: float = 0.99,
        eps: float = 1e-8,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        *,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
    ) -> None:
        super().__init__(lr, clipnorm=clipnorm, clipvalue=clipvalue)
        check_in_range("RMSprop", "alpha", alpha, 0.0, 1.0)
        check_positive_float("RMSprop", eps=eps)
        check_in_range("RMSprop", "momentum", momentum, 0.0, 1.0)
        check_in_range("RMSprop", "weight_decay", weight_decay, 0.0, np.inf)
        self.alpha, self.eps = float(alpha), float(eps)
        self.momentum, self.weight_decay = float(momentum), float(weight_decay)

    square_avg = _state("square_avg")
    velocity = _state("velocity")

    def _state_names(self) -> tuple[str, ...]:
        return ("square_avg", "velocity") if self.momentum else ("square_avg",)

    def _state_decays(self) -> tuple[float, ...]:
        return (self.alpha, self.momentum)

    def _update(self, data, grad, tmp, state: dict) -> None:
        g = grad + self.weight_decay * data if self.weight_decay else grad
        s = state["square_avg"]
        s *= self.alpha
        np.multiply(g, g, out=tmp)
        tmp *= 1.0 - self.alpha
        s += tmp
        np.sqrt(s, out=tmp)
        tmp += self.eps
        np.divide(g, tmp, out=tmp)  # g / (sqrt(s) + eps)
        if self.momentum:
            v = state["velocity"]
            v *= self.momentum
            v += tmp
            np.multiply(v, self.lr, out=tmp)  # lr * v
        else:
            tmp *= self.lr
        data -= tmp

    def get_config(self) -> dict:
        return {
            "lr": self.lr,
            "alpha": self.alpha,
            "eps": self.eps,
            "momentum": self.momentum,
            "weight_decay": self.weight_decay,
            **self._clip_config(),
        }


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015), as torch.optim.Adam.

    g = grad + weight_decay * p           (L2 penalty folded into the gradient)
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g**2
    p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)
    """

    decoupled = False

    def __init__(
        self,
        lr: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
    ) -> None:
        super().__init__(lr, clipnorm=clipnorm, clipvalue=clipvalue)
        name = type(self).__name__
        check_in_range(name, "beta1", beta1, 0.0, 1.0)
        check_in_range(name, "beta2", beta2, 0.0, 1.0)
        check_positive_float(name, eps=eps)
        check_in_range(name, "weight_decay", weight_decay, 0.0, np.inf)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.weight_decay = float(weight_decay)

    m = _state("m")  # first moment
    v = _state("v")  # second moment

    def _state_names(self) -> tuple[str, ...]:
        return ("m", "v")

    def _state_decays(self) -> tuple[float, ...]:
        return (self.beta1, self.beta2)

    def _update(self, data, grad, tmp, state: dict) -> None:
        b1, b2, m, v = self.beta1, self.beta2, state["m"], state["v"]
        if self.weight_decay and self.decoupled:
            data *= 1.0 - self.lr * self.weight_decay  # AdamW: shrink p directly
        elif self.weight_decay:
            grad = grad + self.weight_decay * data
        # 12 whole-buffer passes, in place, into one reused workspace: the fewest
        # NumPy can do without changing what m and v hold (it has no fused
        # multiply-add; each pass is one arithmetic operation of the formula).
        # Measured on the mlp's 235,146 float32 entries: ~230 us, of which the
        # square root takes 65 us and the division 27 us.
        m *= b1
        np.multiply(grad, 1.0 - b1, out=tmp)
        m += tmp
        v *= b2
        np.multiply(grad, grad, out=tmp)
        tmp *= 1.0 - b2
        v += tmp
        bias1 = 1.0 - b1**self.t
        root2 = math.sqrt(1.0 - b2**self.t)  # a Python float: see below
        # m / (sqrt(v) / root2 + eps) = root2 * m / (sqrt(v) + eps * root2): the bias
        # correction of v moves into two scalars, saving a pass over the buffer.
        # Every scalar here is a Python float: a NumPy float64 scalar (np.sqrt's
        # result) would make NumPy compute float32 buffers in float64, which made
        # this update 30 % slower.
        np.sqrt(v, out=tmp)
        tmp += self.eps * root2
        np.divide(m, tmp, out=tmp)
        tmp *= self.lr * root2 / bias1
        data -= tmp

    def get_config(self) -> dict:
        return {
            "lr": self.lr,
            "beta1": self.beta1,
            "beta2": self.beta2,
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            **self._clip_config(),
        }


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter, 2019), as
    torch.optim.AdamW: p = p * (1 - lr * weight_decay), then the Adam step
    without the penalty in the gradient. weight_decay defaults to 0.01."""

    decoupled = True

    def __init__(
        self,
        lr: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        *,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
    ) -> None:
        super().__init__(
            lr, beta1, beta2, eps, weight_decay, clipnorm=clipnorm, clipvalue=clipvalue
        )


OPTIMIZERS = {"sgd": SGD, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}


def get_optimizer(optimizer, **hyperparameters) -> Optimizer:
    """An Optimizer from an instance, or from a name in OPTIMIZERS (used by fit)."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str) and optimizer.lower() in OPTIMIZERS:
        return OPTIMIZERS[optimizer.lower()](**hyperparameters)
    known = ", ".join(sorted(OPTIMIZERS))
    raise ConfigError(f"unknown optimizer {optimizer!r}; known optimizers: {known}")
