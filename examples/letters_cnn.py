"""Seed 003: the O/X letter network (convolution, max-pool to 2x2, 2 sigmoid, softmax).

Run:  python examples/letters_cnn.py [--tiny] [--plot]

Prints, in order (the seeds are fixed, so are the numbers):
  * the network and the shape after each layer, checked before any data is seen:
    (1, 6, 6) -> ... -> (1, 2, 2), the seed's 4 inputs -> (4,) -> (2,) -> (2,);
  * the held-out accuracy on 1000 new noisy letters after 40 epochs of SGD with
    momentum on 1000 letters (gn.datasets.make_letters): 1.000;
  * the same network trained with plain SGD from 5 initialisations, each once
    with cross-entropy on the logits and once with MSE on softmax outputs: mean
    held-out accuracy after 1, 5, 10, 20 and 40 epochs and the mean final
    losses, side by side (cross-entropy reaches 1.000 sooner);
  * the gradient each of the two losses sends back for a confidently wrong
    prediction: about 1 for cross-entropy, about 1e-3 for MSE on softmax.
--plot saves letters_losses.png with the mean curves (needs matplotlib).
--tiny uses 200 letters and a few epochs (a second).

The network is the seed's: Conv2D (one 3x3 filter) -> MaxPool2D to 2x2 ->
Flatten (4 inputs) -> Dense(4, 2) + Sigmoid (h1, h2) -> Dense(2, 2) (o1, o2),
with softmax cross-entropy. A ReLU follows the convolution, as in most CNNs:
without it a few initialisations settle for 95-99 %.

The seed's four questions, answered
-----------------------------------
1. Should y = [[0], [1]] change? Yes. With two output nodes each example's
   target is a row with one number per node: [1, 0] for O and [0, 1] for X,
   so y = [[1, 0], [0, 1]] (one-hot). glassnet also takes the integer labels
   [0, 1] and one-hot encodes them inside the loss: the integer names the
   node that should win, it is not a target value for one output.

2. How does the code know that o1 is O and o2 is X? It does not, until it is
   trained: nothing in the network ties o1 to O. The one-hot targets do. The
   loss is small only when o1 is high for O and o2 for X, so gradient descent
   makes them so; swap the columns of y and the network learns the opposite.

3. Is y_pred right? Not yet, for two reasons. Softmax belongs on the raw scores
   (logits) w9*h1 + w10*h2, not on sigmoid(...) of them: sigmoid squeezes each
   score into (0, 1), so two scores differ by less than 1 and softmax can never
   give a letter more than e / (1 + e) = 0.73. The network cannot become
   confident and the loss stalls, as it did after 40000 epochs. And do not take
   max(y_pred) for training: the loss needs the whole vector [p_O, p_X]; the
   argmax is only how the answer is read afterwards (model.predict_classes).

4. How does d_L_d_ypred change? It becomes a vector, one entry per output, and
   each weight's update must use the entry of the output it feeds (o1's error
   for w9 and w10, o2's for w11 and w12). With cross-entropy on the softmax of
   the logits z, L = -sum_k y_k log p_k, the chain collapses to dL/dz = p - y
   (divided by the batch size for a mean): no softmax derivative to write.
   With MSE on softmax outputs, dL/dp = 2 (p - y) / 2 must still go through the
   softmax Jacobian diag(p) - p p^T, whose entries vanish when p is near 0 or 1,
   so a confidently wrong network hardly learns: the run below shows it.
"""

import argparse
import os
import tempfile

import numpy as np

import glassnet as gn

EPOCHS_SHOWN = (1, 5, 10, 20, 40)
LOSSES = {
    "cross-entropy on logits": "softmax_cross_entropy",
    "MSE on softmax outputs": "mse",
}


def build(seed: int, softmax_output: bool = False) -> gn.Sequential:
    """The seed's network; softmax_output appends a Softmax layer (for MSE)."""
    layers = [
        gn.Conv2D(1, 1, 3, padding="same", init="he_normal"),  # (N, 1, 6, 6) -> same
        gn.ReLU(),
        gn.MaxPool2D(3),  # (N, 1, 6, 6) -> (N, 1, 2, 2): the seed's 4 inputs
        gn.Flatten(),  # (N, 1, 2, 2) -> (N, 4)
        gn.Dense(4, 2, init="uniform"),  # h1, h2 (PyTorch's init suits the sigmoid)
        gn.Sigmoid(),
        gn.Dense(2, 2),  # o1, o2 as logits: softmax comes with the loss
    ]
    if softmax_output:
        layers.append(gn.Softmax())
    return gn.Sequential(*layers, seed=seed)


def show_shapes(model: gn.Sequential, input_shape: tuple[int, ...]) -> None:
    """Each layer with its output shape for one sample (no data needed)."""
    shape = input_shape
    print(f"input {shape}")
    for layer in model:
        shape = layer.output_shape(shape)
        print(f"  {layer!r:<60} -> {shape}")


def train(model, X, Y, X_test, Y_test, loss: str, optimizer, epochs: int):
    """fit with held-out accuracy tracked every epoch; returns the History."""
    return model.fit(
        X,
        Y,
        loss=loss,
        optimizer=optimizer,
        epochs=epochs,
        batch_size=32,
        metrics=["accuracy"],
        validation_data=(X_test, Y_test),
        verbose=0,
    )


def compare_losses(X, y, X_test, y_test, seeds, epochs: int) -> dict:
    """Each loss of LOSSES from the same initial weights, plain SGD, per seed.

    Returns {name: {"loss": (seeds, epochs), "val_accuracy": (seeds, epochs)}}.
    """
    curves = {}
    for name, loss in LOSSES.items():
        runs = []
        for seed in seeds:
            model = build(seed, softmax_output=loss == "mse")
            sgd = gn.SGD(lr=0.1)
            runs.append(train(model, X, y, X_test, y_test, loss, sgd, epochs))
        keys = ("loss", "val_accuracy")
        curves[name] = {k: np.array([h.history[k] for h in runs]) for k in keys}
    return curves


def wrong_prediction_gradients() -> tuple[np.ndarray, np.ndarray]:
    """dL/dlogits for logits [4, -4] ("surely O") on an X, for both losses."""
    logits, target = np.array([[4.0, -4.0]]), np.array([[0.0, 1.0]])
    cross_entropy = gn.SoftmaxCrossEntropy()
    cross_entropy.forward(logits, target)
    softmax, mse = gn.Softmax(), gn.MeanSquaredError()
    mse.forward(softmax.forward(logits), target)
    return cross_entropy.backward()[0], softmax.backward(mse.backward())[0]


def save_plot(curves: dict, path: str) -> bool:
    """Mean loss and held-out accuracy curves per loss; False without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return False
    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)
    loss_ax, acc_ax = fig.subplots(1, 2)
    for name, curve in curves.items():
        epochs = np.arange(1, curve["loss"].shape[1] + 1)
        loss_ax.plot(epochs, curve["loss"].mean(axis=0), label=name)
        acc_ax.plot(epochs, curve["val_accuracy"].mean(axis=0), label=name)
    loss_ax.set(xlabel="epoch", ylabel="training loss (each its own)", yscale="log")
    acc_ax.set(xlabel="epoch", ylabel="held-out accuracy")
    loss_ax.legend()
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=folder)  # atomic: write, rename
    os.close(fd)
    try:
        fig.savefig(tmp)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)  # never leave a half-written file behind
        raise
    return True


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="200 letters, few epochs")
    parser.add_argument("--plot", action="store_true", help="save letters_losses.png")
    args = parser.parse_args(argv)
    n, epochs = (200, 5) if args.tiny else (1000, 40)

    X, y = gn.datasets.make_letters(n, noise=0.1, one_hot=True, seed=0)
    X_test, y_test = gn.datasets.make_letters(n, noise=0.1, one_hot=True, seed=1)
    model = build(seed=0)
    show_shapes(model, X.shape[1:])
    sgd = gn.SGD(lr=0.1, momentum=0.9)
    history = train(model, X, y, X_test, y_test, "softmax_cross_entropy", sgd, epochs)
    accuracy = float(np.mean(model.predict_classes(X_test) == y_test.argmax(axis=1)))
    print(f"held-out accuracy {accuracy:.3f} on {n} new noisy letters, {epochs} epochs")

    seeds = range(2) if args.tiny else range(1, 6)
    curves = compare_losses(X, y, X_test, y_test, seeds, epochs)
    shown = [e for e in EPOCHS_SHOWN if e <= epochs]
    print(f"\nplain SGD (lr 0.1), mean of {len(seeds)} initialisations;", end=" ")
    print("held-out accuracy at epoch")
    print(f"{'':<26}" + "".join(f"{e:>7}" for e in shown) + "   final loss")
    for name, curve in curves.items():
        accuracy_mean = curve["val_accuracy"].mean(axis=0)
        row = "".join(f"{accuracy_mean[e - 1]:7.3f}" for e in shown)
        print(f"{name:<26}{row}   {curve['loss'][:, -1].mean():.4f}")

    d_ce, d_mse = wrong_prediction_gradients()
    print(
        "\nlogits [4, -4] for an X (p = [0.9997, 0.0003]), dL/dlogits:\n"
        f"  cross-entropy on logits  {np.array2string(d_ce, precision=4)}\n"
        f"  MSE on softmax outputs   {np.array2string(d_mse, precision=4)}"
    )
    if args.plot:
        saved = save_plot(curves, "letters_losses.png")
        print("saved letters_losses.png" if saved else "--plot needs matplotlib")
    return {
        "accuracy": accuracy,
        "loss": history.history["loss"][-1],
        "curves": curves,
        "wrong_prediction_gradients": (d_ce, d_mse),
    }


if __name__ == "__main__":
    main()
