"""GRU: the gated recurrent unit, an LSTM with two gates and no separate cell."""

import numpy as np

from glassnet._kernels import sigmoid
from glassnet.nn.layers.recurrent import _Recurrent


class GRU(_Recurrent):
    """Gated recurrent unit over a sequence, as torch.nn.GRU(batch_first=True).

    Gates in PyTorch's order r, z, n:

        xw = x_t @ weight_ih.T + bias_ih,  hw = h_{t-1} @ weight_hh.T + bias_hh
        r = sigmoid(xw_r + hw_r)           reset gate       (N, H) each
        z = sigmoid(xw_z + hw_z)           update gate
        n = tanh(xw_n + r * hw_n)          candidate: r scales the recurrent term,
                                           bias_hn included (PyTorch's form)
        h_t = (1 - z) * n + z * h_{t-1}

    with h_{-1} = 0 unless an initial state is given.

    Shapes: x (N, T, D) -> (N, T, H) with return_sequences=True, else (N, H).
    weight_ih (3H, D), weight_hh (3H, H), bias_ih (3H,), bias_hh (3H,): PyTorch's
    names and layout (its "weight_ih_l0" is "weight_ih" here); init
    U(-1/sqrt(H), 1/sqrt(H)) as PyTorch. bidirectional, the initial state
    (forward((x, h0)), backward -> (dx, dh0)) and stacking as for RNN.

    One step's backward, given dh = dL/dh_t (output + step t+1):
        dn = dh * (1 - z),  dz = dh * (h_{t-1} - n)
        da_n = dn * (1 - n^2)                      n's pre-activation
        da_r = da_n * hw_n * r (1 - r),  da_z = dz * z (1 - z)
        dxw = [da_r, da_z, da_n]                   (N, 3H)
        dhw = [da_r, da_z, da_n * r]               r multiplies hw_n, not xw_n
        dh_{t-1} = dh * z + dhw @ weight_hh         the direct path and the gates
    Unlike RNN and LSTM, the input and recurrent products get different gradients.
    """

    _GATES = 3
    _CACHED = ("h_prev", "r", "z", "n", "hw_n")  # per step, each (N, H)

    def _step(self, xw_t, state, w_hh, b_hh):
        """xw_t (N, 3H), state (h_{t-1},) -> (h_t,) and the step's cache."""
        (h_prev,) = state
        H = h_prev.shape[1]
        hw = h_prev @ w_hh.T  # (N, H) @ (H, 3H) -> (N, 3H)
        hw += b_hh
        r = sigmoid(xw_t[:, :H] + hw[:, :H])
        z = sigmoid(xw_t[:, H : 2 * H] + hw[:, H : 2 * H])
        hw_n = hw[:, 2 * H :]
        n = np.tanh(xw_t[:, 2 * H :] + r * hw_n)
        h = n + z * (h_prev - n)  # (1 - z) n + z h_{t-1}
        return (h,), (h_prev, r, z, n, hw_n)

    def _step_backward(self, dstate, step_cache, w_hh):
        """(dL/dh_t,) -> dL/dxw_t, dL/dhw_t, (dL/dh_{t-1},)."""
        (dh,) = dstate
        h_prev, r, z, n, hw_n = step_cache
        dn = dh * (1.0 - z)
        dz = dh * (h_prev - n)
        da_n = dn * (1.0 - n * n)  # through tanh
        da_r = da_n * hw_n * r * (1.0 - r)  # through r * hw_n, then the sigmoid
        da_z = dz * z * (1.0 - z)
        dxw = np.concatenate([da_r, da_z, da_n], axis=1)  # (N, 3H)
        dhw = np.concatenate([da_r, da_z, da_n * r], axis=1)  # (N, 3H)
        dh_prev = dhw @ w_hh  # (N, 3H) @ (3H, H) -> (N, H)
        dh_prev += dh * z  # h_{t-1} also reaches h_t directly
        return dxw, dhw, (dh_prev,)
