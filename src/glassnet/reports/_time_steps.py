"""The gradient reaching every hidden state h_t of a recurrent layer.

dL/dh_t is the total gradient of the loss with respect to the hidden state at
step t: what the layer's output sends to h_t directly (return_sequences, or the
final state) plus what step t+1 sends back through the recurrence. Its size
over t is the vanishing-gradient picture: explain prints it, gradient_flow
reports and plots it, and explain checks it against its own independent
backprop through time (explicit per-step Jacobians, _rules_recurrent.py).

Here it is walked back through the layer's own cached forward with its cell's
own step backward (`_step_backward`, the function backward runs), so the
numbers are the ones training really computes, at the cost of one backward.
"""

import numpy as np


def is_recurrent(layer) -> bool:
    """RNN, LSTM, GRU and their subclasses (found by name: no layer import)."""
    return any(c.__name__ == "_Recurrent" for c in type(layer).__mro__)


def directions(layer) -> list[str]:
    """["forward"], or ["forward", "reverse"] for a bidirectional layer."""
    return ["forward", "reverse"][: len(layer._suffixes())]


def output_gradients(layer, g: np.ndarray, d: int, T: int) -> np.ndarray:
    """What the output's gradient g gives each h_t of direction d directly,
    (N, T, H) in processing order (the reverse direction reads t = T-1 .. 0):
    g's slice at every step with return_sequences, else at the last step only."""
    H = layer.hidden_size
    part = g[..., d * H : (d + 1) * H]  # this direction's features
    if layer.return_sequences:
        return part if d == 0 else part[:, ::-1]  # (N, T, H)
    dhs = np.zeros((part.shape[0], T, H), dtype=part.dtype)
    dhs[:, -1] = part  # the final state: processing step T-1 in both directions
    return dhs


def hidden_gradients(layer, x, g: np.ndarray) -> list[np.ndarray]:
    """dL/dh_t for t = 0 .. T-1, one (N, T, H) array per direction, in time
    order, for the layer's input x (or (x, initial state)) and the gradient g of
    its output. Runs the layer's forward once more to refill its cache."""
    layer.forward(x)
    caches, _, (N, T, _) = layer._cached()
    found = []
    for d, suffix in enumerate(layer._suffixes()):
        cache, w_hh = caches[d], getattr(layer, "weight_hh" + suffix).data
        steps = [cache[name] for name in layer._CACHED]  # each (T, N, H)
        dhs = output_gradients(layer, g, d, T)  # processing order
        dstate = tuple(np.zeros_like(cache["h0"]) for _ in layer._STATE)
        dh_steps = np.empty_like(dhs)
        for s in reversed(range(T)):  # the loop of _Recurrent._run_backward
            dh = dhs[:, s] + dstate[0]  # from the output and from step s+1
            dh_steps[:, s] = dh
            _, _, dstate = layer._step_backward(
                (dh, *dstate[1:]), [a[s] for a in steps], w_hh
            )
        found.append(dh_steps if d == 0 else dh_steps[:, ::-1])  # time order
    return found


def step_norms(dh: np.ndarray) -> np.ndarray:
    """(N, T, H) -> (T,): the mean over the batch of each example's L2 norm
    over the H features, |dL/dh_t| = mean over n of ||dh[n, t, :]||."""
    return np.linalg.norm(dh, axis=2).mean(axis=0)
