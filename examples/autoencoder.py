"""Seed 002: the autoencoder n -> k sigmoid -> n sigmoid -> n linear, and dS/dz2.

Run:  python examples/autoencoder.py [--tiny]

Prints, in order:
  * the held-out reconstruction MSE of an 8 -> 2 -> 8 -> 8 autoencoder trained with
    Adam on data near a 2-D surface (gn.datasets.make_correlated), as a fraction of
    the data variance: 5.8 % (the added noise alone accounts for 5.6 %);
  * gn.gradcheck of the trained model with the MSE loss: PASSED;
  * the seed's own backprop (m = 5 examples, n = k = 2, vector biases) with the
    shapes of dS/dh2, g'(z2) and dS/dz2, all (m, n), and gn.gradcheck of it twice:
    dS/dz2 = dS/dh2 * g'(z2) (Hadamard) passes; the answer's (n, n) matrix
    np.dot(g(z2).T, 1 - g(z2)) has matching shapes but fails on w1, b1, w2, b2.
--tiny trains 100 epochs instead of 300 (well under a second).
"""

import argparse

import numpy as np

import glassnet as gn

HADAMARD_NOTE = """\
h2[i, j] = g(z2[i, j]) depends on z2[i, j] alone, so dh2/dz2 is diagonal: g'(z2) on
its diagonal, zeros elsewhere. Multiplying by a diagonal matrix multiplies entry by
entry, so dS/dz2 = dS/dh2 * g'(z2), the Hadamard product, shaped (m, n) like z2.
An (n, n) matrix product has the right shape but mixes the m examples together."""


def g(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def seed_forward(p: dict, x: np.ndarray):
    """The seed's forward pass, with vector biases: x (m, n) -> xhat (m, n)."""
    h1 = g(x @ p["w1"] + p["b1"])  # (m, n) @ (n, k) + (k,) -> (m, k)
    h2 = g(h1 @ p["w2"] + p["b2"])  # (m, k) @ (k, n) + (n,) -> (m, n)
    return h1, h2, h2 @ p["w3"] + p["b3"]  # (m, n) @ (n, n) + (n,) -> (m, n)


def seed_gradients(p: dict, x: np.ndarray, hadamard: bool = True) -> dict:
    """dS/d(every array) for S = sum((x - xhat)**2) / (2 m), the seed's cost."""
    m = len(x)
    h1, h2, xhat = seed_forward(p, x)
    dxhat = (xhat - x) / m  # (m, n)
    dh2 = dxhat @ p["w3"].T  # (m, n) @ (n, n) -> (m, n)
    if hadamard:
        dz2 = dh2 * h2 * (1 - h2)  # (m, n) * (m, n): elementwise
    else:
        dz2 = dh2 @ (h2.T @ (1 - h2))  # (m, n) @ (n, n): the answer's matrix "g'"
    dz1 = (dz2 @ p["w2"].T) * h1 * (1 - h1)  # (m, n) @ (n, k) -> (m, k)
    weights = dict(w1=x.T @ dz1, w2=h1.T @ dz2, w3=h2.T @ dxhat)  # (in, m) @ (m, out)
    # each bias was broadcast over the m rows, so its gradient sums over them
    return weights | dict(b1=dz1.sum(axis=0), b2=dz2.sum(axis=0), b3=dxhat.sum(axis=0))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="100 epochs, not 300")
    args = parser.parse_args(argv)

    X = gn.datasets.make_correlated(n_samples=500, n_features=8, n_latent=2, seed=0)
    X_train, X_test = X[:400], X[400:]  # the rows are independent draws
    n, k = X.shape[1], 2
    # init="uniform" (PyTorch's default) suits a sigmoid better than Glorot
    encoder = [gn.Dense(n, k, init="uniform"), gn.Sigmoid()]
    decoder = [gn.Dense(k, n, init="uniform"), gn.Sigmoid()]
    model = gn.Sequential(*encoder, *decoder, gn.Dense(n, n), seed=0)
    adam, epochs = gn.Adam(lr=0.01), 100 if args.tiny else 300
    model.fit(X_train, X_train, loss="mse", optimizer=adam, epochs=epochs, verbose=0)
    mse = model.evaluate(X_test, X_test, loss="mse")["loss"]
    variance = float(X_test.var(axis=0).mean())  # the MSE of predicting the mean
    print(
        f"{n} -> {k} -> {n} -> {n} autoencoder: held-out reconstruction MSE {mse:.5f}"
        f" = {mse / variance:.1%} of the data variance {variance:.5f}"
    )
    report = gn.gradcheck(model, X_test[:10], X_test[:10], loss="mse")
    print(report, end="\n\n")

    rng = np.random.default_rng(0)
    m, n, k = 5, 2, 2  # the seed's small test
    x = rng.random((m, n))
    shapes = dict(w1=(n, k), b1=(k,), w2=(k, n), b2=(n,), w3=(n, n), b3=(n,))
    p = {name: rng.random(shape) for name, shape in shapes.items()}  # vector biases
    h1, h2, xhat = seed_forward(p, x)
    dh2 = ((xhat - x) / m) @ p["w3"].T
    print(
        f"dS/dh2 {dh2.shape} * g'(z2) = h2 * (1 - h2) {h2.shape} "
        f"-> dS/dz2 {(dh2 * h2 * (1 - h2)).shape}"
    )
    print(HADAMARD_NOTE)

    def cost(arrays: dict) -> float:
        return float(np.sum((x - seed_forward(arrays, x)[2]) ** 2) / (2 * m))

    checks = {}
    for hadamard in (True, False):
        checks[hadamard] = gn.gradcheck(
            cost, p, grad=lambda a, h=hadamard: seed_gradients(a, x, h)
        )
        failed = [row.name for row in checks[hadamard].failures()]
        verdict = "PASSED" if checks[hadamard].passed else f"FAILED on {failed}"
        print(
            f"seed's backprop, dS/dz2 by {'Hadamard' if hadamard else 'matrix'} "
            f"product: gradcheck {verdict}"
        )
    return dict(mse_fraction=mse / variance, gradcheck=report, seed_checks=checks)


if __name__ == "__main__":
    main()
