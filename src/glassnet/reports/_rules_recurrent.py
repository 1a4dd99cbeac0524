"""The math of RNN, LSTM and GRU: backprop through time, one step at a time.

Unrolled over T steps, a recurrent layer is a T-layer network whose layers
share weight_ih and weight_hh. The derivation shows one step's backward (where
the hidden-state gradient enters it, what it hands to the step before) and the
sums over t that give the weight gradients.

The reference VJP takes another route than the layers (which apply each
step's derivative elementwise from their cache and take the weight gradients
in one product after the loop): it recomputes the forward pass from the traced
input, builds each step's local Jacobians as explicit matrices, d state_t /
d(pre-activations) and d state_t / d state_{t-1} (state = h, or [h, c] for the
LSTM), chains them backwards through time, and adds each step's weight
gradient inside the loop. On the way it records dL/dh_t, the gradient
reaching every hidden state, and explain compares it with what
_time_steps.hidden_gradients walks back through the layer's own step backward
(the per-step numbers gradient_flow reports).
"""

import numpy as np

from glassnet._kernels import sigmoid
from glassnet.reports._derivation import Derivation, Jacobian, Rule, Step
from glassnet.reports._table import shape_str
from glassnet.reports._time_steps import (
    directions,
    hidden_gradients,
    output_gradients,
    step_norms,
)

_BASES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _s(a) -> str:
    return shape_str(np.shape(a))


def _diag(v: np.ndarray) -> np.ndarray:
    """(N, H) -> (N, H, H): each row of v on the diagonal of its own matrix."""
    return v[:, :, None] * np.eye(v.shape[1])


# -- each cell's forward step and its explicit local Jacobians ------------------------


def _rnn_step(layer, px, ph, state):
    """h_t and its Jacobians: d h_t / d(px, ph) (N, H, 2H), d h_t / d h_{t-1}
    holding the pre-activations fixed (zero: h_{t-1} enters through ph only)."""
    a = px + ph
    if layer.nonlinearity == "tanh":
        h = np.tanh(a)
        slope = 1.0 - h * h
    else:
        h = np.maximum(a, 0.0)
        slope = (a > 0).astype(a.dtype)
    d = _diag(slope)  # (N, H, H)
    return h, np.concatenate([d, d], axis=2), np.zeros_like(d)


def _lstm_step(layer, px, ph, state):
    """s_t = [h_t, c_t] (N, 2H) and its Jacobians: d s_t / d(px, ph) (N, 2H, 8H),
    d s_t / d s_{t-1} (N, 2H, 2H), whose only direct path is c_{t-1} -> c_t."""
    H = px.shape[1] // 4
    c_prev = state[:, H:]
    a = px + ph
    i, f = sigmoid(a[:, :H]), sigmoid(a[:, H : 2 * H])
    g, o = np.tanh(a[:, 2 * H : 3 * H]), sigmoid(a[:, 3 * H :])
    c = f * c_prev + i * g
    tc = np.tanh(c)
    h = o * tc
    zero = np.zeros_like(_diag(i))
    # d c / d a, gate blocks i, f, g, o: (N, H, 4H)
    dc_da = np.concatenate(
        [_diag(g * i * (1 - i)), _diag(c_prev * f * (1 - f)),
         _diag(i * (1 - g * g)), zero],
        axis=2,
    )  # fmt: skip
    through_c = np.einsum("nh,nhk->nhk", o * (1 - tc * tc), dc_da)
    dh_da = through_c + np.concatenate([zero, zero, zero, _diag(tc * o * (1 - o))], 2)
    ds_da = np.concatenate([dh_da, dc_da], axis=1)  # (N, 2H, 4H)
    ds_dprev = np.concatenate(
        [np.concatenate([zero, _diag(o * (1 - tc * tc) * f)], axis=2),
         np.concatenate([zero, _diag(f)], axis=2)],
        axis=1,
    )  # fmt: skip
    return np.concatenate([h, c], axis=1), np.concatenate([ds_da, ds_da], 2), ds_dprev


def _gru_step(layer, px, ph, state):
    """h_t and its Jacobians: d h_t / d(px, ph) (N, H, 6H), px = x_t's three
    blocks r, z, n and ph = h_{t-1}'s; d h_t / d h_{t-1} directly: diag(z)."""
    H = px.shape[1] // 3
    h_prev = state
    r = sigmoid(px[:, :H] + ph[:, :H])
    z = sigmoid(px[:, H : 2 * H] + ph[:, H : 2 * H])
    hn = ph[:, 2 * H :]
    n = np.tanh(px[:, 2 * H :] + r * hn)
    h = (1 - z) * n + z * h_prev
    dn = (1 - z) * (1 - n * n)  # d h / d(n's pre-activation)
    d_r = _diag(dn * hn * r * (1 - r))
    d_z = _diag((h_prev - n) * z * (1 - z))
    dpx = np.concatenate([d_r, d_z, _diag(dn)], axis=2)
    dph = np.concatenate([d_r, d_z, _diag(dn * r)], axis=2)
    return h, np.concatenate([dpx, dph], axis=2), _diag(z)


_CELLS = {"RNN": (_rnn_step, 1), "LSTM": (_lstm_step, 2), "GRU": (_gru_step, 1)}


def _cell(layer) -> str:
    return next(c.__name__ for c in type(layer).__mro__ if c.__name__ in _CELLS)


def _direction(layer, x, dhs, params):
    """Backprop through time for one direction, from explicit local Jacobians.

    x (N, T, D) and dhs (N, T, H), the output's gradient for every h_t, both in
    processing order -> dx (N, T, D), the four parameter gradients, and
    dL/dh_t (N, T, H) in processing order: all that reaches each h_t."""
    step, parts = _CELLS[_cell(layer)]
    w_ih, w_hh, b_ih, b_hh = params
    N, T, _ = x.shape
    H = layer.hidden_size
    # forward, recomputed: the state before each step
    states = [np.zeros((N, parts * H))]
    for t in range(T):
        px = x[:, t] @ w_ih.T + b_ih
        ph = states[-1][:, :H] @ w_hh.T + b_hh
        states.append(step(layer, px, ph, states[-1])[0])
    grads = [np.zeros_like(p) for p in params]
    dx = np.zeros_like(x)
    ds = np.zeros((N, parts * H))  # dL/d state_t from the steps after t
    dh_steps = np.zeros((N, T, H))
    GH = w_ih.shape[0]
    for t in reversed(range(T)):
        ds[:, :H] += dhs[:, t]  # h_t also reaches the output directly
        dh_steps[:, t] = ds[:, :H]
        h_prev = states[t][:, :H]
        px = x[:, t] @ w_ih.T + b_ih
        ph = h_prev @ w_hh.T + b_hh
        _, ds_dp, ds_dprev = step(layer, px, ph, states[t])
        dp = (ds[:, None, :] @ ds_dp)[:, 0]  # (N, 2GH): J.T @ ds, per example
        dpx, dph = dp[:, :GH], dp[:, GH:]
        grads[0] += np.einsum("ng,nd->gd", dpx, x[:, t])  # this step's share
        grads[1] += np.einsum("ng,nh->gh", dph, h_prev)
        grads[2] += dpx.sum(axis=0)
        grads[3] += dph.sum(axis=0)
        dx[:, t] = dpx @ w_ih
        ds = (ds[:, None, :] @ ds_dprev)[:, 0]  # the direct path (c, or z h)
        ds[:, :H] += dph @ w_hh  # and the path through the recurrent product
    return dx, grads, dh_steps


def _reference(t) -> dict:
    """The reference gradients by name, "dL/dh_t" included (computed once per
    trace: the derivation and the check both use them)."""
    if getattr(t, "_bptt", None) is None:
        t._bptt = _bptt(t)
    return t._bptt


def _bptt(t) -> dict:
    layer, x, g = t.layer, np.asarray(t.x), t.g
    T = x.shape[1]
    reference, dx, dh = {}, np.zeros_like(x), []
    for d, suffix in enumerate(layer._suffixes()):
        params = [getattr(layer, base + suffix).data for base in _BASES]
        dhs = output_gradients(layer, g, d, T)  # processing order
        xs = x if d == 0 else x[:, ::-1]
        dx_d, grads, dh_d = _direction(layer, xs, dhs, params)
        dx += dx_d if d == 0 else dx_d[:, ::-1]
        dh.append(dh_d if d == 0 else dh_d[:, ::-1])  # time order
        reference.update(zip((b + suffix for b in _BASES), grads, strict=True))
    reference["x"] = dx
    reference["dL/dh_t"] = np.stack(dh)  # (directions, N, T, H)
    return reference


def _hidden(t) -> dict:
    """dL/dh_t as gradient_flow reports it, the layer's own step backward, one
    (N, T, H) per direction (computed once per trace, like _reference)."""
    if getattr(t, "_hidden", None) is None:
        t._hidden = hidden_gradients(t.layer, t.x, t.g)
    return {"dL/dh_t": np.stack(t._hidden)}


# -- the derivation text ---------------------------------------------------------------


def _step_lines(cell: str, layer, N: int, H: int) -> list[Step]:
    """One time step's backward, given dh_t."""
    nh = f"({N}, {H})"
    if cell == "RNN":
        slope = "1 - h_t**2" if layer.nonlinearity == "tanh" else "h_t > 0"
        return [
            Step("da_t", f"dh_t * ({slope})", f"{nh}, Hadamard: f' from cached h_t"),
            Step("dh_{t-1}", "da_t @ weight_hh", f"{nh} @ ({H}, {H}) -> {nh}: to t-1"),
        ]
    if cell == "LSTM":
        return [
            Step(
                "dc_t",
                "dc from step t+1 + dh_t * o * (1 - tanh(c_t)**2)",
                f"{nh}: c_t feeds h_t and c_t+1",
            ),
            Step(
                "da_t",
                "[dc_t*g*i*(1-i), dc_t*c_{t-1}*f*(1-f), dc_t*i*(1-g**2), "
                "dh_t*tanh(c_t)*o*(1-o)]",
                f"({N}, {4 * H}): gates i, f, g, o side by side",
            ),
            Step(
                "dh_{t-1}, dc_{t-1}",
                "da_t @ weight_hh, dc_t * f",
                f"({N}, {4 * H}) @ ({4 * H}, {H}) -> {nh}; {nh}: to t-1",
            ),
        ]
    return [
        Step(
            "da_n, da_r, da_z",
            "dh_t*(1-z)*(1-n**2), da_n*hw_n*r*(1-r), dh_t*(h_{t-1}-n)*z*(1-z)",
            f"{nh} each, Hadamard",
        ),
        Step(
            "dxw_t, dhw_t",
            "[da_r, da_z, da_n], [da_r, da_z, da_n * r]",
            f"({N}, {3 * H}) each: r scales hw_n, not xw_n",
        ),
        Step(
            "dh_{t-1}",
            "dh_t * z + dhw_t @ weight_hh",
            f"{nh}: the direct path and the gates, to t-1",
        ),
    ]


_FORWARD = {
    "RNN": "h_t = {f}(x_t @ weight_ih.T + bias_ih + h_{{t-1}} @ weight_hh.T + bias_hh)",
    "LSTM": "i, f, g, o = gates(x_t @ weight_ih.T + bias_ih + h_{t-1} @ weight_hh.T "
    "+ bias_hh); c_t = f * c_{t-1} + i * g; h_t = o * tanh(c_t)",
    "GRU": "r, z = sigmoid(xw + hw); n = tanh(xw_n + r * hw_n); "
    "h_t = (1 - z) * n + z * h_{t-1}",
}


def _recurrent(t) -> Derivation:
    layer, x, out = t.layer, np.asarray(t.x), t.out
    cell = _cell(layer)
    N, T, D = x.shape
    H, G = layer.hidden_size, layer._GATES
    GH, dirs = G * H, len(layer._suffixes())
    seq = layer.return_sequences
    forward = _FORWARD[cell]
    if cell == "RNN":
        forward = forward.format(f=layer.nonlinearity)
    enters = (
        "g[:, t] + dh_t from step t+1"
        if seq
        else f"g at t = {T - 1} only; before that, dh_t from step t+1 alone"
    )
    steps = [Step("dh_t", enters, f"({N}, {H}), t = {T - 1} .. 0")]
    steps += _step_lines(cell, layer, N, H)
    dxw = "dxw" if cell == "GRU" else "da"
    dhw = "dhw" if cell == "GRU" else "da"
    NT = N * T
    steps += [
        Step(
            "dL/dweight_ih",
            f"sum over t of {dxw}_t.T @ x_t",
            f"({GH}, {NT}) @ ({NT}, {D}) -> ({GH}, {D}): all {T} steps in one product",
        ),
        Step(
            "dL/dweight_hh",
            f"sum over t of {dhw}_t.T @ h_{{t-1}}",
            f"({GH}, {NT}) @ ({NT}, {H}) -> ({GH}, {H})",
        ),
        Step(
            "dL/dbias_ih, dL/dbias_hh",
            f"{dxw} and {dhw} summed over n and t"
            if cell == "GRU"
            else "da summed over n and t, both",
            f"({GH},) each",
        ),
        Step(
            "dL/dx",
            f"{dxw} @ weight_ih",
            f"({N}, {T}, {GH}) @ ({GH}, {D}) -> ({N}, {T}, {D})",
        ),
    ]
    if dirs == 2:
        steps.append(
            Step(
                "reverse direction",
                f"the same over t = {T - 1} .. 0 reversed, g[..., {H}:{2 * H}], "
                "weights *_reverse; dL/dx adds both",
                f"its gradient flows from t = 0 towards t = {T - 1}",
            )
        )
    # d out / d x: h_t depends on x_0 .. x_t (the reverse direction: x_t .. x_T-1)
    per_direction = H * D * (T * (T + 1) // 2 if seq else T)
    if seq and dirs == 1:
        structure = (
            f"block lower-triangular over time: h_t depends on x_0 .. x_t only, "
            f"{T * (T + 1) // 2} of {T * T} blocks ({H}, {D}) per example; "
            "block-diagonal over examples"
        )
    elif seq:
        structure = (
            "forward half block lower-triangular over time, reverse half block "
            "upper-triangular; block-diagonal over examples"
        )
    else:
        structure = (
            f"dense over time: the last state depends on all {T} inputs, one "
            f"({dirs * H}, {T * D}) block per example"
        )
    cached = ", ".join(layer._CACHED)
    why = [
        f"unrolled, the layer is {T} steps sharing weight_ih and weight_hh: each "
        "weight's gradient is the sum of its per-step gradients (backprop "
        "through time)",
        "dh_t collects the gradient of h_t from the output "
        + ("at step t" if seq else "(the last step only)")
        + " and from step t+1 through the recurrence, then the step's backward "
        "hands dh_{t-1} on",
        f"cached per step: {cached}, each ({N}, {H}), stacked as ({T}, {N}, {H}); "
        f"with x ({N}, {T}, {D}), h_-1 and every h_t ({N}, {T}, {H})",
    ]
    if cell == "LSTM":
        why.append(
            "the cell path dc_{t-1} = dc_t * f multiplies by the forget gate only: "
            "with f near 1 the gradient crosses many steps undiminished"
        )
    else:
        why.append(
            "each step multiplies dh by weight_hh.T and the nonlinearity's slope "
            "(GRU: plus z on the direct path): over k steps the gradient shrinks "
            "or grows geometrically (vanishing or exploding gradients)"
        )
    numbers = []
    gradients = _hidden(t)["dL/dh_t"]  # (directions, N, T, H)
    for name, dh in zip(directions(layer), gradients, strict=True):
        norms = step_norms(dh)
        text = " ".join(f"{v:.2e}" for v in norms)
        if T > 12:
            head, tail = norms[:5], norms[-5:]
            text = " ".join(f"{v:.2e}" for v in head) + " ... "
            text += " ".join(f"{v:.2e}" for v in tail)
        numbers.append(
            Step(
                "|dL/dh_t|, t = 0 ..",
                text,
                f"mean over the batch of ||dL/dh_t[n]||, {name}",
            )
        )
    return Derivation(
        Step(
            "forward",
            forward,
            f"{_s(x)} -> {_s(out)}: {T} steps, "
            + (f"every h_t ({dirs}H = {dirs * H})" if seq else "the last h"),
        ),
        steps,
        Jacobian(out.size, x.size, structure, N * dirs * per_direction),
        why,
        numbers,
    )


def _recurrent_vjp(t) -> dict:
    return _reference(t)


RULES = {
    "RNN": Rule(_recurrent, _recurrent_vjp, _hidden),
    "LSTM": Rule(_recurrent, _recurrent_vjp, _hidden),
    "GRU": Rule(_recurrent, _recurrent_vjp, _hidden),
}
