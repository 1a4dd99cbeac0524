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
        """xw_t (3, N, H) gate-major, state (h_{t-1},) -> (h_t,) and the step's
        cache."""
        (h_prev,) = state
        G, N, H = xw_t.shape
        hw = (h_prev @ w_hh.T).reshape(N, G, H)  # (N, H) @ (H, 3H), one product
        # gate-major, (3, N, H), one contiguous block per gate (see LSTM._step)
        hw = np.add(hw.transpose(1, 0, 2), b_hh.reshape(G, 1, H))
        rz = sigmoid(xw_t[:2] + hw[:2])  # (2, N, H): r and z in one pass
        r, z = rz
        hw_n = hw[2]
        n = r * hw_n
        n += xw_t[2]
        np.tanh(n, out=n)
        h = h_prev - n
        h *= z
        h += n  # (1 - z) n + z h_{t-1}
        return (h,), (h_prev, r, z, n, hw_n)

    def _step_backward(self, dstate, step_cache, w_hh):
        """(dL/dh_t,) -> dL/dxw_t, dL/dhw_t (N, 3H) each, (dL/dh_{t-1},)."""
        (dh,) = dstate
        h_prev, r, z, n, hw_n = step_cache
        N, H = dh.shape
        # each gate's gradient in its own contiguous block, in place
        da = np.empty((3, N, H), dtype=dh.dtype)  # gate-major
        da_r, da_z, da_n = da
        np.multiply(dh, 1.0 - z, out=da_n)  # dn
        da_n *= 1.0 - n * n  # through tanh
        np.multiply(da_n, hw_n, out=da_r)
        da_r *= r
        da_r *= 1.0 - r  # through r * hw_n, then the sigmoid
        np.subtract(h_prev, n, out=da_z)
        da_z *= dh  # dz = dh * (h_{t-1} - n)
        da_z *= z
        da_z *= 1.0 - z
        dxw = da.transpose(1, 0, 2).copy().reshape(N, 3 * H)  # [da_r, da_z, da_n]
        da_n *= r  # r multiplies hw_n, not xw_n
        dhw = da.transpose(1, 0, 2).reshape(N, 3 * H)  # [da_r, da_z, da_n * r]
        dh_prev = dhw @ w_hh  # (N, 3H) @ (3H, H) -> (N, H)
        dh_prev += dh * z  # h_{t-1} also reaches h_t directly
        return dxw, dhw, (dh_prev,)
