"""LSTM: the recurrent layer whose cell state carries gradients across long spans."""

import numpy as np

from glassnet.nn.layers.recurrent import _Recurrent


class LSTM(_Recurrent):
    """Long short-term memory over a sequence, as torch.nn.LSTM(batch_first=True).

    Gates in PyTorch's order i, f, g, o:

        a = x_t @ weight_ih.T + bias_ih + h_{t-1} @ weight_hh.T + bias_hh   (N, 4H)
        i = sigmoid(a[:, 0:H])     input gate       how much of g to write
        f = sigmoid(a[:, H:2H])    forget gate      how much of c_{t-1} to keep
        g = tanh(a[:, 2H:3H])      candidate        what to write
        o = sigmoid(a[:, 3H:4H])   output gate      how much of the cell to show
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(c_t)

    with h_{-1} = c_{-1} = 0 unless an initial state is given.

    Shapes: x (N, T, D) -> (N, T, H) with return_sequences=True (every h_t), else
    (N, H) (h_{T-1}). weight_ih (4H, D), weight_hh (4H, H), bias_ih (4H,),
    bias_hh (4H,): PyTorch's names and layout (its "weight_ih_l0" is "weight_ih"
    here), so weights copy both ways; init U(-1/sqrt(H), 1/sqrt(H)) as PyTorch.

    bidirectional=True adds a second LSTM over the reversed sequence
    (weight_ih_reverse, ...); outputs are concatenated forward then reverse,
    (N, T, 2H), or (N, 2H) = each direction's final h (PyTorch's h_n).
    Initial state: forward((x, (h0, c0))), each (N, H) or (directions, N, H);
    backward then returns (dx, (dh0, dc0)). forward(x) starts from zeros.
    Stack by composition: LSTM(D, H, return_sequences=True), LSTM(H, H).

    One step's backward, given dh = dL/dh_t (output + step t+1) and dc_next =
    dL/dc_t from step t+1 (the cell path):
        do = dh * tanh(c_t)
        dc = dc_next + dh * o * (1 - tanh(c_t)^2)    c_t feeds h_t and c_{t+1}
        di, df, dg = dc * g, dc * c_{t-1}, dc * i
        dc_{t-1} = dc * f                            the cell path: only f, no matmul
        da = [di i(1-i), df f(1-f), dg (1-g^2), do o(1-o)]              (N, 4H)
        dh_{t-1} = da @ weight_hh                     (N, 4H) @ (4H, H)
    The cell path multiplies the gradient by f at each step and nothing else, so a
    forget gate near 1 carries it across many steps; the RNN's path multiplies by
    weight_hh and tanh' every step, which shrinks (or grows) it geometrically.
    """

    _GATES = 4
    _STATE = ("h", "c")
    _CACHED = ("c_prev", "i", "f", "g", "o", "tanh_c")  # per step, each (N, H)

    def _step(self, xw_t, state, w_hh, b_hh):
        """xw_t = x_t @ weight_ih.T + bias_ih, gate-major (4, N, H), state
        (h_{t-1}, c_{t-1}) -> (h_t, c_t) and what the step's backward reads."""
        h_prev, c_prev = state
        G, N, H = xw_t.shape
        hw = (h_prev @ w_hh.T).reshape(N, G, H)  # (N, H) @ (H, 4H), one product
        # gate-major, (4, N, H), one contiguous block per gate (one product, not
        # one per gate: at two threads each product is a synchronisation)
        a = np.add(hw.transpose(1, 0, 2), xw_t)
        a += b_hh.reshape(G, 1, H)  # the four gates' pre-activations
        # speed: the gates in place, with sigmoid(z) as (1 + tanh(z / 2)) / 2
        # (glassnet._kernels.sigmoid), so one tanh serves all four gates: 7
        # passes without allocations instead of 13 with four
        sig = (a[:2], a[3:])  # i and f, o
        for block in sig:
            block *= 0.5
        np.tanh(a, out=a)  # g = tanh(a_g) done; i, f, o: tanh(a / 2)
        for block in sig:
            block += 1.0
            block *= 0.5
        i, f, g, o = a  # each (N, H)
        c = f * c_prev
        c += i * g
        tanh_c = np.tanh(c)
        h = o * tanh_c
        return (h, c), (c_prev, i, f, g, o, tanh_c)

    def _step_backward(self, dstate, step_cache, w_hh):
        """(dL/dh_t, dL/dc_t from step t+1) -> dL/d(pre-activations) (N, 4H)
        twice (the input and the recurrent products share them) and
        (dh_{t-1}, dc_{t-1})."""
        dh, dc_next = dstate
        c_prev, i, f, g, o, tanh_c = step_cache
        N, H = dh.shape
        dc = tanh_c * tanh_c
        np.subtract(1.0, dc, out=dc)
        dc *= o
        dc *= dh  # dh * o * (1 - tanh(c_t)^2)
        dc += dc_next  # c_t reaches the loss through h_t and through c_{t+1}
        # each gate's gradient in its own contiguous block, in place
        da = np.empty((4, N, H), dtype=dh.dtype)  # gate-major
        di, df, dg, do = da
        np.multiply(dc, g, out=di)
        np.multiply(dc, c_prev, out=df)
        np.multiply(dc, i, out=dg)
        np.multiply(dh, tanh_c, out=do)
        # times each nonlinearity's slope: s (1 - s) for i, f, o; 1 - g^2 for g
        for d_gate, s in ((di, i), (df, f), (do, o)):
            d_gate *= s
            d_gate *= 1.0 - s
        dg *= 1.0 - g * g
        da = da.transpose(1, 0, 2).reshape(N, 4 * H)  # the gates side by side
        dh_prev = da @ w_hh  # (N, 4H) @ (4H, H) -> (N, H)
        dc_prev = dc * f
        return da, da, (dh_prev, dc_prev)
