"""RNN: the Elman recurrent layer, the simplest network with a memory."""

from __future__ import annotations  # np.random in signatures: loaded on first use

import numpy as np

from glassnet.errors import ConfigError
from glassnet.nn.layers.recurrent import _Recurrent


class RNN(_Recurrent):
    """Elman RNN over a sequence, as torch.nn.RNN(batch_first=True).

        h_t = tanh(x_t @ weight_ih.T + bias_ih + h_{t-1} @ weight_hh.T + bias_hh)

    (nonlinearity="relu": max(0, .) instead of tanh), with h_{-1} = 0 unless an
    initial state is given.

    Shapes: x (N, T, D) -> (N, T, H) with return_sequences=True (every h_t),
    else (N, H) (the last, h_{T-1}); D = input_size, H = hidden_size.
    weight_ih (H, D), weight_hh (H, H), bias_ih (H,), bias_hh (H,): PyTorch's names
    and layout (its "weight_ih_l0" is "weight_ih" here), so weights copy both ways;
    init U(-1/sqrt(H), 1/sqrt(H)) as PyTorch.

    bidirectional=True runs a second RNN over the reversed sequence, with its own
    weight_ih_reverse, ...; the outputs are concatenated, forward then reverse:
    (N, T, 2H), or (N, 2H) = [forward h_{T-1}, reverse h at t = 0], each
    direction's final state (PyTorch's h_n, Keras's Bidirectional).

    Initial state: forward(x) starts from zeros; forward((x, h0)) starts from h0,
    of shape (N, H) or (directions, N, H) as in PyTorch, and backward then returns
    (dx, dh0) with dh0 in h0's shape (an h0 computed from image features is how
    a captioning model conditions its RNN). Stack layers by composition:
    RNN(D, H, return_sequences=True) followed by RNN(H, H) (2H after a
    bidirectional one) is PyTorch's num_layers=2.

    One step's backward, given dh = dL/dh_t (from the output and from step t+1):
        da = dh * (1 - h_t^2)                 tanh' (relu: dh * (h_t > 0))   (N, H)
        dL/dh_{t-1} += da @ weight_hh         (N, H) @ (H, H), on to step t-1
        dweight_hh += da.T @ h_{t-1},  dweight_ih += da.T @ x_t,  dbias += sum(da)
    (the sums over t are taken after the loop; see glassnet.nn.layers.recurrent).
    """

    _CACHED = ("h",)  # per step: h_t, (N, H)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        nonlinearity: str = "tanh",
        *,
        return_sequences: bool = False,
        bidirectional: bool = False,
        rng: np.random.Generator | None = None,
        dtype=None,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ConfigError(
                f'RNN: nonlinearity must be "tanh" or "relu", got {nonlinearity!r}'
            )
        self.nonlinearity = nonlinearity
        super().__init__(
            input_size,
            hidden_size,
            return_sequences=return_sequences,
            bidirectional=bidirectional,
            rng=rng,
            dtype=dtype,
        )

    def _step(self, xw_t, state, w_hh, b_hh):
        """xw_t = x_t @ weight_ih.T + bias_ih (1, N, H), state = (h_{t-1},) ->
        (h_t,) and the step's cache, (h_t,)."""
        (h_prev,) = state
        a = h_prev @ w_hh.T  # (N, H) @ (H, H) -> (N, H)
        a += xw_t[0]
        a += b_hh  # the pre-activation
        h = np.tanh(a, out=a) if self.nonlinearity == "tanh" else np.maximum(a, 0.0)
        return (h,), (h,)

    def _step_backward(self, dstate, step_cache, w_hh):
        """(dL/dh_t,) -> dL/d(pre-activation) twice (the input and the recurrent
        products share it) and (dL/dh_{t-1},)."""
        (dh,), (h,) = dstate, step_cache
        if self.nonlinearity == "tanh":
            da = dh * (1.0 - h * h)  # tanh'(a) = 1 - tanh(a)^2
        else:
            da = dh * (h > 0)  # relu'(a) = 1 where a > 0 (0 at the kink, as torch)
        dh_prev = da @ w_hh  # (N, H) @ (H, H) -> (N, H)
        return da, da, (dh_prev,)

    def get_config(self) -> dict:
        config = super().get_config()
        config["nonlinearity"] = self.nonlinearity
        return config
