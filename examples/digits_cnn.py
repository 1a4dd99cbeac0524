"""A small CNN on scikit-learn's 8x8 handwritten digits: about 98 % held out.

Run:  python examples/digits_cnn.py [--tiny] [--batchnorm]

Needs scikit-learn for the data (pip install "glassnet[sklearn]").
Prints, in order (the seeds are fixed, so are the numbers):
  * each layer with its output shape for one 1x8x8 image, checked before any
    data is seen: (16, 8, 8) -> (16, 4, 4) -> (32, 4, 4) -> (32, 2, 2) ->
    (128,) -> (10,);
  * the training loss every 5 epochs (Adam, cosine learning-rate decay, 30 epochs
    on 1347 digits, about 2 seconds on 2 cores);
  * the accuracy on the 450 held-out digits: 0.978 (at least 0.97 over the
    initialisations we tried), and the time taken.
--batchnorm puts a BatchNorm2D after each convolution (conv-BN-ReLU, no
Dropout): the training loss falls much faster (0.07 after 5 epochs against
0.26) and the held-out accuracy is 0.982 (4 s); then it prints the running mean
and variance the first BatchNorm2D learned, which predict uses in place of the
batch's own statistics.
--tiny trains 2 epochs on 300 digits (a second), for the tests.
"""

import argparse
import time

import numpy as np

import glassnet as gn


def build(seed: int, batchnorm: bool = False) -> gn.Sequential:
    """conv-relu-pool twice, dropout, one Dense layer: 10 logits."""
    if batchnorm:
        return build_batchnorm(seed)
    return gn.Sequential(
        gn.Conv2D(1, 16, 3, padding="same", init="he_normal"),  # -> (N, 16, 8, 8)
        gn.ReLU(),
        gn.MaxPool2D(2),  # -> (N, 16, 4, 4)
        gn.Conv2D(16, 32, 3, padding="same", init="he_normal"),  # -> (N, 32, 4, 4)
        gn.ReLU(),
        gn.MaxPool2D(2),  # -> (N, 32, 2, 2)
        gn.Flatten(),  # -> (N, 128)
        gn.Dropout(0.3),  # only while fitting; predict never drops
        gn.Dense(128, 10),  # -> (N, 10) logits
        seed=seed,
    )


def build_batchnorm(seed: int) -> gn.Sequential:
    """conv-BN-relu-pool twice, one Dense layer: BatchNorm2D normalises each
    channel over the batch and pixels while fitting, with its running mean and
    variance in predict."""
    return gn.Sequential(
        gn.Conv2D(1, 16, 3, padding="same", init="he_normal"),  # -> (N, 16, 8, 8)
        gn.BatchNorm2D(16),  # per channel: over N * 8 * 8 values
        gn.ReLU(),
        gn.MaxPool2D(2),  # -> (N, 16, 4, 4)
        gn.Conv2D(16, 32, 3, padding="same", init="he_normal"),  # -> (N, 32, 4, 4)
        gn.BatchNorm2D(32),
        gn.ReLU(),
        gn.MaxPool2D(2),  # -> (N, 32, 2, 2)
        gn.Flatten(),  # -> (N, 128)
        gn.Dense(128, 10),  # -> (N, 10) logits
        seed=seed,
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="2 epochs on 300 digits")
    parser.add_argument(
        "--batchnorm", action="store_true", help="BatchNorm2D after each convolution"
    )
    args = parser.parse_args(argv)

    X, y = gn.datasets.load_digits()  # (1797, 1, 8, 8) in [0, 1], labels 0..9
    X_train, X_test, y_train, y_test = gn.datasets.train_test_split(X, y, 0.25, seed=0)
    epochs = 2 if args.tiny else 30
    if args.tiny:
        X_train, y_train = X_train[:300], y_train[:300]

    model = build(seed=0, batchnorm=args.batchnorm)
    shape = X.shape[1:]
    for layer in model:  # the same walk Sequential.output_shape does before fit
        shape = layer.output_shape(shape)
        print(f"  {layer!r:<60} -> {shape}")

    start = time.perf_counter()
    history = model.fit(
        X_train,
        y_train,
        loss="softmax_cross_entropy",
        optimizer=gn.Adam(lr=3e-3),
        epochs=epochs,
        batch_size=32,
        callbacks=[gn.CosineDecay(epochs)],
        verbose=0,
    )
    seconds = time.perf_counter() - start
    losses = history.history["loss"]
    for epoch in range(4, epochs, 5):
        print(f"epoch {epoch + 1:3d}  training loss {losses[epoch]:.4f}")
    accuracy = float(np.mean(model.predict_classes(X_test) == y_test))
    print(
        f"held-out accuracy {accuracy:.3f} on {len(y_test)} digits "
        f"({len(y_train)} for training, {epochs} epochs, {seconds:.1f} s)"
    )
    if args.batchnorm:
        bn = model[1]  # running statistics: what predict normalises with
        print(
            "first BatchNorm2D, channels 0-3: running mean",
            bn.running_mean[:4].round(3),
        )
        print(
            "                                 running var ", bn.running_var[:4].round(3)
        )
    return {"accuracy": accuracy, "seconds": seconds, "loss": losses[-1]}


if __name__ == "__main__":
    main()
