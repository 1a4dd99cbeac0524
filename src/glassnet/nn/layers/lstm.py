"""LSTM: the recurrent layer whose cell state carries gradients across long spans."""

import numpy as np

from glassnet.nn.layers.recurrent import _Recurrent

# The fused loop's internal gate order, as indices into PyTorch's (i, f, g, o):
# (o, i, f, g), so the three sigmoid gates are one contiguous block [0:3] and
# (i, f) sit next to (g, c_{t-1}) for one product (see LSTM._run). The
# Parameters keep PyTorch's order; only the loop's private copies are permuted.
_ORDER = (3, 0, 1, 2)
# sigmoid(z) = (1 + tanh(z / 2)) / 2: the sigmoid gates' rows of the private
# weight copies are halved (exact: a power of two), so one tanh pass over all
# four gates serves the three sigmoids and g.
_HALVE = (0.5, 0.5, 0.5, 1.0)
# The backward factors K are computed this many steps at a time, just before the
# loop reaches them: about 1 MB at N, H = 64, 128, still in cache when read,
# where K for all 40 steps at once (6.5 MB) was not (backward 9.5 -> 9.0 ms).
_FACTOR_STEPS = 4


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

    _step and _step_backward below are one step of exactly this, as written here;
    explain walks them. Training runs the same math in one fused loop over time
    (_run, _run_backward at the end of the class: preallocated buffers, fewer
    and contiguous NumPy passes), checked against the steps in
    tests/test_recurrent.py; a subclass that redefines a step gets the generic
    loop, which calls it.
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

    # -- the fused loop over time (speed; the steps above are its reference) -------

    def _fused(self) -> bool:
        """True unless a subclass redefines a step: then the generic loop of
        _Recurrent runs, calling that step (tests change a step to check that
        gradcheck and explain catch a wrong backward)."""
        cls = type(self)
        return cls._step is LSTM._step and cls._step_backward is LSTM._step_backward

    def _run(self, x, state, w_ih, w_hh, b_ih, b_hh):
        """One direction over time, as _Recurrent._run (same cache names), fused.

        Speed: every buffer is allocated once per call and each step writes into
        it with out= (no per-step arrays, no np.stack after the loop), 9 NumPy
        calls per step where the generic loop with _step made 21, each on
        contiguous (N, H) blocks (a strided operand makes a NumPy pass 3-4x
        slower at N, H = 64, 128).
        Layout: S (T+1, 5, N, H), per step [o, i, f, g, c_{t-1}] gate-major;
        tanh_c (T, N, H); h_all (T+1, N, H)."""
        if not self._fused():
            return super()._run(x, state, w_ih, w_hh, b_ih, b_hh)
        N, T, D = x.shape
        H = self.hidden_size
        dt = np.result_type(x, w_ih)
        # x's rows, time-major, with a column of ones: the biases ride in the
        # input product (and in backward, dbias is dweight_ih's last column),
        # which saves a pass over xw (0.15 ms of the 15 ms step)
        x_ones = np.empty((T * N, D + 1), dt)  # (T*N, D+1)
        x_ones[:, D] = 1.0
        x_rows = x_ones[:, :D]  # (T*N, D) view
        x_rows.reshape(T, N, D)[...] = x.transpose(1, 0, 2)
        halve = np.array(_HALVE, dt)[:, None, None]  # (4, 1, 1)
        order = list(_ORDER)
        # the private copies, gate-major in the loop's order: (4, D+1, H) with
        # the two biases as row D, and (4, H, H)
        w_ih_4 = np.concatenate(
            [w_ih.reshape(4, H, D), (b_ih + b_hh).reshape(4, H, 1)], 2
        )
        w_ih_4 = (w_ih_4[order] * halve).transpose(0, 2, 1)
        w_hh_4 = (w_hh.reshape(4, H, H)[order] * halve).transpose(0, 2, 1)
        # every step's input term and both biases: one product per gate over
        # the rows (T*N, D+1), gate-major (4, T*N, H)
        xw = np.matmul(x_ones, w_ih_4).reshape(4, T, N, H)  # xw[:, t]: (4, N, H)
        S = np.empty((T + 1, 5, N, H), dt)
        h_all = np.empty((T + 1, N, H), dt)  # h_-1, then every h_t
        tanh_c = np.empty((T, N, H), dt)
        zero = state is None  # no initial state: h_-1 = c_-1 = 0
        h_all[0], S[0, 4] = (0.0, 0.0) if zero else state
        P = np.empty((T, 2, N, H), dt)  # i * g, f * c_{t-1}: backward reuses them
        for t in range(T):
            St = S[t]  # (5, N, H)
            gates = St[:4]  # (4, N, H)
            if t == 0 and zero:  # h_-1 = 0: no product
                gates[...] = xw[:, 0]
            else:
                np.matmul(h_all[t], w_hh_4, out=gates)  # (N, H) @ (4, H, H)
                gates += xw[:, t]  # the pre-activations
            np.tanh(gates, out=gates)  # g; tanh(z/2) for o, i, f
            sig = St[:3]  # o, i, f: sigmoid = (1 + tanh(z/2)) / 2
            sig *= 0.5
            sig += 0.5
            np.multiply(St[1:3], St[3:5], out=P[t])  # i * g, f * c_{t-1}
            c = S[t + 1, 4]
            np.add(P[t, 0], P[t, 1], out=c)  # c_t
            np.tanh(c, out=tanh_c[t])
            np.multiply(St[0], tanh_c[t], out=h_all[t + 1])  # h_t = o tanh(c_t)
        gates = S[:T]  # what the steps' backward reads, by name, each (T, N, H)
        cache = {"c_prev": gates[:, 4], "i": gates[:, 1], "f": gates[:, 2]}
        cache.update(g=gates[:, 3], o=gates[:, 0], tanh_c=tanh_c)
        cache.update(x_rows=x_rows, h0=h_all[0], h_all=h_all)
        cache.update(fused=(S, P, x_ones, zero))
        return h_all[1:], cache

    def _run_backward(self, dhs, cache, w_ih, w_hh, need_dx):
        """One direction back through time, as _Recurrent._run_backward, fused.

        Speed: what does not depend on the gradient flowing back is computed
        ahead, _FACTOR_STEPS steps at a time in few passes, the factors K of
            dc = dc_next + dh * Kc,  da_o = dh * Ko,  da_[i,f,g] = dc * K_[i,f,g]
        (Kc = o (1 - tanh(c)^2), Ko = tanh(c) o (1 - o), Ki = g i (1 - i),
        Kf = c_{t-1} f (1 - f), Kg = i (1 - g^2)); each step is then 6 NumPy
        calls (7 with return_sequences) where _step_backward made 26, each on
        contiguous blocks. K (_FACTOR_STEPS, 5, N, H) and the step's scratch
        dS (5, N, H): [i, f, g, o, c]; da (T, N, 4H), PyTorch's order, as the
        products with weight_hh and weight_ih take it."""
        if "fused" not in cache:
            return super()._run_backward(dhs, cache, w_ih, w_hh, need_dx)
        S, P, x_ones, zero = cache["fused"]
        h_all, tanh_c = cache["h_all"], cache["tanh_c"]
        T1, N, H = h_all.shape
        T, D, dt = T1 - 1, x_ones.shape[1] - 1, h_all.dtype
        C = min(_FACTOR_STEPS, T)
        K = np.empty((C, 5, N, H), dt)  # the factors of steps t - j .. t
        one_minus = np.empty((C, 3, N, H), dt)  # _backward_factors's scratch
        da = np.empty((T, N, 4 * H), dt)  # dL/d(pre-activations), every step
        dS = np.empty((5, N, H), dt)  # this step's [da_i, da_f, da_g, da_o, dc]
        dh = np.empty((N, H), dt)  # dL/dh_t, then the product's dh_{t-1}
        dc_next = np.empty((N, H), dt)  # dL/dc_t from step t+1
        sequences = dhs.ndim == 3
        for t in reversed(range(T)):
            j = t % C  # step t's place in K
            if j == C - 1 or t == T - 1:  # K for steps t - j .. t
                s = slice(t - j, t + 1)
                h = h_all[t - j + 1 : t + 2]  # h_t for those steps
                _backward_factors(S[s], P[s], tanh_c[s], h, K[: j + 1], one_minus)
            Kt = K[j]  # (5, N, H)
            if t == T - 1:  # the last step: nothing from step T
                dh[...] = dhs[t] if sequences else dhs
            elif sequences:
                np.add(dh, dhs[t], out=dh)  # the output's gradient + step t+1's
            np.multiply(dh, Kt[3:5], out=dS[3:5])  # da_o, dh * Kc
            if t < T - 1:
                np.add(dS[4], dc_next, out=dS[4])  # dc: + the cell path
            np.multiply(dS[4], Kt[:3], out=dS[:3])  # da_i, da_f, da_g
            np.copyto(da[t].reshape(N, 4, H), dS[:4].transpose(1, 0, 2))
            if t > 0 or not zero:  # dh_{t-1}, dc_{t-1} (for t = 0: dh0, dc0)
                np.matmul(da[t], w_hh, out=dh)  # (N, 4H) @ (4H, H)
                np.multiply(dS[4], S[t, 2], out=dc_next)  # the cell path: * f
        if zero:  # nothing asked for dh0, dc0 (forward had no initial state)
            dstate = (np.zeros((N, H), dt), np.zeros((N, H), dt))
        else:
            dstate = (dh, dc_next)
        da = da.reshape(T * N, 4 * H)
        first = N if zero else 0  # h_-1 = 0 adds nothing to dweight_hh
        h_rows = h_all[:-1].reshape(T * N, H)[first:]
        # (4H, T*N) @ (T*N, D+1): the sum over t and n; the ones column gives
        # the bias gradient, the same for bias_ih and bias_hh
        dw_ih = da.T @ x_ones
        grads = (
            np.ascontiguousarray(dw_ih[:, :D]),  # (4H, D)
            da[first:].T @ h_rows,  # (4H, T*N) @ (T*N, H)
            dw_ih[:, D].copy(),  # (4H,)
            dw_ih[:, D].copy(),
        )
        if not need_dx:
            return None, dstate, grads
        dx = (da @ w_ih).reshape(T, N, D)  # (T*N, 4H) @ (4H, D)
        return dx.transpose(1, 0, 2), dstate, grads  # (N, T, D), a view


def _backward_factors(S, P, tanh_c, h, K, one_minus) -> None:
    """What the forward kept for steps t0 .. t1, S (n, 5, N, H) [o, i, f, g,
    c_{t-1}] per step, P (n, 2, N, H) [i g, f c_{t-1}], tanh_c and h (n, N, H)
    -> K (n, 5, N, H) [Ki, Kf, Kg, Ko, Kc] per step (see LSTM._run_backward),
    written in place; one_minus (>= n, 3, N, H) is scratch. Speed: from the
    products the forward already has (i g, f c_{t-1}, h = o tanh(c)), 10
    passes where the textbook forms take 15:
        Ki = i g (1 - i), Kf = f c_{t-1} (1 - f), Ko = h (1 - o),
        Kg = i - (i g) g, Kc = o - tanh(c) h."""
    one_minus = one_minus[: len(S)]
    np.subtract(1.0, S[:, :3], out=one_minus)  # 1 - o, 1 - i, 1 - f
    np.multiply(P, one_minus[:, 1:3], out=K[:, :2])  # Ki, Kf
    np.multiply(h, one_minus[:, 0], out=K[:, 3])  # Ko
    np.multiply(P[:, 0], S[:, 3], out=K[:, 2])
    np.subtract(S[:, 1], K[:, 2], out=K[:, 2])  # Kg
    np.multiply(tanh_c, h, out=K[:, 4])
    np.subtract(S[:, 0], K[:, 4], out=K[:, 4])  # Kc
