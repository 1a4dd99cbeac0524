"""Optimizers, simplest first: SGD, RMSprop, Adam, AdamW; and OPTIMIZERS.

An optimizer is built without parameters. `fit` binds it to a model's
parameters, or you call `step(model.parameters())` yourself after backward.
On binding, the parameters are gathered into one flat buffer (see
glassnet.parameter.flatten), so each update below is a handful of whole-buffer
in-place operations, however many layers the model has. The update rules and
their defaults follow PyTorch's torch.optim, and the tests compare against it.
"""

import math

import numpy as np

from glassnet._validation import check_in_range, check_positive_float
from glassnet.errors import CallOrderError, ConfigError
from glassnet.nn.parameter import Parameter, flatten


class Optimizer:
    """Base class. Subclasses define _init_state() and _update(data, grad)."""

    def __init__(self, lr: float) -> None:
        check_positive_float(type(self).__name__, lr=lr)
        self.lr = float(lr)
        self.params: list[Parameter] = []
        self.t = 0  # number of steps taken

    def bind(self, params) -> "Optimizer":
        """Attach to params (a list of Parameter) and reset the optimizer state."""
        self.params = list(params)
        self._data, self._grad = flatten(self.params)
        self._tmp = np.empty_like(self._data)  # workspace reused by every step
        self.t = 0
        self._init_state()
        return self

    def step(self, params=None) -> None:
        """Update the bound parameters (or bind to `params` first) from their .grad."""
        if params is not None:
            self.ensure_bound(params)
        elif not hasattr(self, "_data"):
            raise CallOrderError(
                f"{type(self).__name__}.step(): no parameters; call "
                "step(model.parameters()) or bind(...) first"
            )
        elif self.params and not self._holds(self.params[0], self.params[-1]):
            self.ensure_bound(self.params)
        self.t += 1
        self._update(self._data, self._grad)

    def ensure_bound(self, params) -> None:
        """Bind to params unless already bound to them. If they are the bound
        parameters but no longer live in this optimizer's buffer (the model and
        optimizer were copied or unpickled, or another optimizer gathered them),
        gather them again and keep the state (moments, step count)."""
        params = params if isinstance(params, list) else list(params)
        if not hasattr(self, "_data") or not self._is_bound_to(params):
            self.bind(params)
        elif not self._holds(*params):
            self._data, self._grad = flatten(self.params)
            self._tmp = np.empty_like(self._data)

    def _holds(self, *params: Parameter) -> bool:
        owner = self._data if self._data.base is None else self._data.base
        return all(p.data.base is owner for p in params)

    def _is_bound_to(self, params) -> bool:
        mine = self.params
        params = params if isinstance(params, list) else list(params)
        return len(params) == len(mine) and all(
            a is b for a, b in zip(params, mine, strict=True)
        )

    def _init_state(self) -> None:
        pass

    def _update(self, data: np.ndarray, grad: np.ndarray) -> None:
        raise NotImplementedError

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The optimizer's per-parameter state (moments, velocities) by name."""
        return {}

    def get_config(self) -> dict:
        return {"lr": self.lr}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


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
    ) -> None:
        super().__init__(lr)
        check_in_range("SGD", "momentum", momentum, 0.0, 1.0)
        check_in_range("SGD", "weight_decay", weight_decay, 0.0, np.inf)
        if nesterov and momentum == 0:
            raise ConfigError("SGD: nesterov=True needs momentum > 0, got momentum=0")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)
        self.weight_decay = float(weight_decay)

    def _init_state(self) -> None:
        self.velocity = np.zeros_like(self._data) if self.momentum else None

    def _update(self, data: np.ndarray, grad: np.ndarray) -> None:
        tmp = self._tmp
        g = grad
        if self.weight_decay:
            g = np.multiply(data, self.weight_decay, out=tmp)
            g += grad
        if self.momentum:
            v = self.velocity
            v *= self.momentum
            v += g
            if not self.nesterov:
                g = v
            elif g is grad:
                g = np.multiply(v, self.momentum, out=tmp)
                g += grad
            else:
                g += v * self.momentum
        np.multiply(g, self.lr, out=tmp)
        data -= tmp

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {"velocity": self.velocity} if self.momentum else {}

    def get_config(self) -> dict:
        return {
            "lr": self.lr,
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "weight_decay": self.weight_decay,
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
    ) -> None:
        super().__init__(lr)
        check_in_range("RMSprop", "alpha", alpha, 0.0, 1.0)
        check_positive_float("RMSprop", eps=eps)
        check_in_range("RMSprop", "momentum", momentum, 0.0, 1.0)
        check_in_range("RMSprop", "weight_decay", weight_decay, 0.0, np.inf)
        self.alpha, self.eps = float(alpha), float(eps)
        self.momentum, self.weight_decay = float(momentum), float(weight_decay)

    def _init_state(self) -> None:
        self.square_avg = np.zeros_like(self._data)
        self.velocity = np.zeros_like(self._data) if self.momentum else None

    def _update(self, data: np.ndarray, grad: np.ndarray) -> None:
        g = grad + self.weight_decay * data if self.weight_decay else grad
        s, tmp = self.square_avg, self._tmp
        s *= self.alpha
        np.multiply(g, g, out=tmp)
        tmp *= 1.0 - self.alpha
        s += tmp
        np.sqrt(s, out=tmp)
        tmp += self.eps
        np.divide(g, tmp, out=tmp)  # g / (sqrt(s) + eps)
        if self.momentum:
            self.velocity *= self.momentum
            self.velocity += tmp
            tmp[...] = self.velocity
        tmp *= self.lr
        data -= tmp

    def state_arrays(self) -> dict[str, np.ndarray]:
        state = {"square_avg": self.square_avg}
        if self.momentum:
            state["velocity"] = self.velocity
        return state

    def get_config(self) -> dict:
        return {
            "lr": self.lr,
            "alpha": self.alpha,
            "eps": self.eps,
            "momentum": self.momentum,
            "weight_decay": self.weight_decay,
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
    ) -> None:
        super().__init__(lr)
        name = type(self).__name__
        check_in_range(name, "beta1", beta1, 0.0, 1.0)
        check_in_range(name, "beta2", beta2, 0.0, 1.0)
        check_positive_float(name, eps=eps)
        check_in_range(name, "weight_decay", weight_decay, 0.0, np.inf)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.weight_decay = float(weight_decay)

    def _init_state(self) -> None:
        self.m = np.zeros_like(self._data)  # first moment
        self.v = np.zeros_like(self._data)  # second moment

    def _update(self, data: np.ndarray, grad: np.ndarray) -> None:
        b1, b2, tmp = self.beta1, self.beta2, self._tmp
        if self.weight_decay and self.decoupled:
            data *= 1.0 - self.lr * self.weight_decay  # AdamW: shrink p directly
        elif self.weight_decay:
            grad = grad + self.weight_decay * data
        # Moments updated in place, with one reused workspace: 12 whole-buffer
        # passes per step and no temporaries, whatever the number of layers.
        self.m *= b1
        np.multiply(grad, 1.0 - b1, out=tmp)
        self.m += tmp
        self.v *= b2
        np.multiply(grad, grad, out=tmp)
        tmp *= 1.0 - b2
        self.v += tmp
        bias1 = 1.0 - b1**self.t
        root2 = math.sqrt(1.0 - b2**self.t)  # a Python float: see below
        # m / (sqrt(v) / root2 + eps) = root2 * m / (sqrt(v) + eps * root2): the bias
        # correction of v moves into two scalars, saving a pass over the buffer.
        # Every scalar here is a Python float: a NumPy float64 scalar (np.sqrt's
        # result) would make NumPy compute float32 buffers in float64, which made
        # this update 30 % slower.
        np.sqrt(self.v, out=tmp)
        tmp += self.eps * root2
        np.divide(self.m, tmp, out=tmp)
        tmp *= self.lr * root2 / bias1
        data -= tmp

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {"m": self.m, "v": self.v}

    def get_config(self) -> dict:
        return {
            "lr": self.lr,
            "beta1": self.beta1,
            "beta2": self.beta2,
            "eps": self.eps,
            "weight_decay": self.weight_decay,
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
    ) -> None:
        super().__init__(lr, beta1, beta2, eps, weight_decay)


OPTIMIZERS = {"sgd": SGD, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}


def get_optimizer(optimizer, **hyperparameters) -> Optimizer:
    """An Optimizer from an instance, or from a name in OPTIMIZERS (used by fit)."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str) and optimizer.lower() in OPTIMIZERS:
        return OPTIMIZERS[optimizer.lower()](**hyperparameters)
    known = ", ".join(sorted(OPTIMIZERS))
    raise ConfigError(f"unknown optimizer {optimizer!r}; known optimizers: {known}")
