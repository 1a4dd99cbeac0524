"""A GRU baseline on "sequential digits": scikit-learn's 8x8 digits read row by row.

Run:  python examples/sequential_digits_gru.py [--tiny]

The small, offline analogue of sequential MNIST: each 8x8 digit is a sequence of
T = 8 steps of 8 pixels (its rows, top to bottom), X (N, 8, 8) = (N, T, D), and a
GRU reads them in order; a Dense layer reads its last state (N, 64) -> 10 logits.
Needs scikit-learn for the data (pip install "glassnet[sklearn]").

Setup, the same for both frameworks: 1347 training digits, 450 held out
(stratified, seed 0); GRU(8, 64) -> Dense(64, 10); softmax cross-entropy; Adam
(lr 0.005, betas 0.9/0.999, eps 1e-8); 30 epochs of batches of 32, the rows
reshuffled every epoch by one seeded generator; float32.
Prints, in order (the seeds are fixed, so are the numbers):
  * glassnet's training loss every 10 epochs and its held-out accuracy (0.982,
    a few seconds on 2 cores);
  * with PyTorch installed: torch.nn.GRU(batch_first=True) and nn.Linear started
    from glassnet's initial weights (copied: the parameter names and gate order
    are PyTorch's) and trained on the same batches in the same order; its
    held-out accuracy (0.982 too: float32 rounding aside, the runs are the
    same) and the fraction of held-out digits both classify alike (100.0 %);
  * |dL/dh_t| for t = 0 .. 7 from gn.gradient_flow on the held-out digits: how
    much gradient reaches each row of the image back through time.
--tiny trains a GRU(8, 32) for 6 epochs on 400 digits (about a second).
"""

import argparse
import copy
import time

import numpy as np

import glassnet as gn

LR, BATCH = 0.005, 32


def batches(n_rows: int, epochs: int, seed: int = 0) -> list[list[np.ndarray]]:
    """The row indices of every batch, epoch by epoch: one seeded shuffle each."""
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(n_rows) for _ in range(epochs)]
    return [[order[i : i + BATCH] for i in range(0, n_rows, BATCH)] for order in orders]


def train_glassnet(model, X, y, plan) -> list[float]:
    """fit one epoch at a time on our own shuffle, so torch can see the same
    batches; the Adam instance keeps its state across fit calls."""
    optimizer, losses = gn.Adam(lr=LR), []
    for epoch in plan:
        order = np.concatenate(epoch)
        history = model.fit(
            X[order], y[order], loss="softmax_cross_entropy", optimizer=optimizer,
            batch_size=BATCH, shuffle=False, verbose=0,
        )  # fmt: skip
        losses.append(history.history["loss"][-1])
    return losses


def train_torch(model, X, y, X_test, plan) -> np.ndarray | None:
    """torch.nn.GRU + nn.Linear from model's weights, the same batches; returns
    the held-out predictions (None without torch)."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)  # small matrices: threads only add waiting
    gru, dense = model[0], model[1]
    net_gru = torch.nn.GRU(gru.input_size, gru.hidden_size, batch_first=True)
    net_out = torch.nn.Linear(gru.hidden_size, dense.weight.shape[1])
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(net_gru, name + "_l0").copy_(torch.tensor(getattr(gru, name).data))
        net_out.weight.copy_(torch.tensor(dense.weight.data.T))  # (10, 64)
        net_out.bias.copy_(torch.tensor(dense.bias.data))
    params = [*net_gru.parameters(), *net_out.parameters()]
    optimizer = torch.optim.Adam(params, lr=LR)
    X, y = torch.tensor(X, dtype=torch.float32), torch.tensor(y)
    for epoch in plan:
        for rows in epoch:
            rows = torch.tensor(rows)
            _, h_last = net_gru(X[rows])  # h_last (1, B, 64)
            loss = torch.nn.functional.cross_entropy(net_out(h_last[0]), y[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        _, h_last = net_gru(torch.tensor(X_test, dtype=torch.float32))
        return net_out(h_last[0]).argmax(dim=1).numpy()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="6 epochs, 400 digits")
    args = parser.parse_args(argv)

    X, y = gn.datasets.load_digits(images=False)  # (1797, 64) in [0, 1]
    X = X.reshape(-1, 8, 8)  # (N, T, D): row t of each digit is step t
    X_train, X_test, y_train, y_test = gn.datasets.train_test_split(X, y, 0.25, seed=0)
    hidden, epochs = (32, 6) if args.tiny else (64, 30)
    if args.tiny:
        X_train, y_train = X_train[:400], y_train[:400]

    model = gn.Sequential(gn.GRU(8, hidden), gn.Dense(hidden, 10), seed=0)
    initial = copy.deepcopy(model)  # torch starts from these weights
    plan = batches(len(X_train), epochs)
    start = time.perf_counter()
    losses = train_glassnet(model, X_train, y_train, plan)
    seconds = time.perf_counter() - start
    for epoch in range(9, epochs, 10):
        print(f"epoch {epoch + 1:3d}  training loss {losses[epoch]:.4f}")
    accuracy = float(np.mean(model.predict_classes(X_test) == y_test))
    print(
        f"glassnet GRU held-out accuracy {accuracy:.3f} on {len(y_test)} digits "
        f"({len(y_train)} for training, {epochs} epochs, {seconds:.1f} s)"
    )

    predicted = train_torch(initial, X_train, y_train, X_test, plan)
    torch_accuracy = agreement = None
    if predicted is None:
        print("PyTorch is not installed: no torch.nn.GRU run to compare")
    else:
        torch_accuracy = float(np.mean(predicted == y_test))
        agreement = float(np.mean(predicted == model.predict_classes(X_test)))
        print(
            f"torch.nn.GRU held-out accuracy {torch_accuracy:.3f} (same initial "
            "weights, hyperparameters and batches)\n"
            f"the two models classify {agreement:.1%} of the held-out digits alike"
        )

    flow = gn.gradient_flow(model, X_test, y_test)  # a float64 copy, one pass
    norms = flow.rows[0].step_norms["forward"]
    print("|dL/dh_t|, t = 0 .. 7: " + " ".join(f"{v:.1e}" for v in norms))
    return {
        "accuracy": accuracy,
        "torch_accuracy": torch_accuracy,
        "agreement": agreement,
        "loss": losses[-1],
        "step_norms": norms,
    }


if __name__ == "__main__":
    main()
