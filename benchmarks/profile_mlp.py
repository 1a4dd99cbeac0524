"""Where one step of the mlp case goes: a per-phase profile (benchmarks/README.md).

    python benchmarks/profile_mlp.py                # 1 and 2 BLAS threads
    python benchmarks/profile_mlp.py --threads 1 --steps 200

The model, data, optimizer and batch are the suite's mlp case (benchmarks/run.py:
784-256-128-10 ReLU, Adam lr 1e-3, batch 128, 60,000 float32 rows). A hand loop
runs fit's Trainer step phase by phase with a clock around each phase (gather,
each layer's forward and backward, the loss, Adam), so the phases add up to the
step; fit's own epoch is timed beside it, and the difference is fit's bookkeeping.
Then, separately: the same matrix products on cached operands (run.py's "GEMMs
alone"), a GEMM right after another vs after a pause (BLAS worker threads
waking), the gather from the 188 MB data set vs from a cached 1 MB block, and
page faults (getrusage minflt) per step. Everything is medians over rounds in
one process; absolute numbers move with the machine's load, shares much less.
"""

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (  # noqa: E402
    machine_facts,
    make_mlp,
    mlp_data,
    mlp_products,
    set_blas_threads,
)

import glassnet as gn  # noqa: E402
from glassnet.train.loop import Trainer  # noqa: E402

BATCH = 128


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def phase_profile(model, optimizer, X, y, steps: int, rng) -> dict[str, float]:
    """Seconds per step of each phase of Trainer.step, over `steps` steps."""
    loss = gn.SoftmaxCrossEntropy()
    trainer = Trainer(model, loss, optimizer)
    layers, params = trainer.layers, trainer.params
    names = [f"{i} {type(layer).__name__}" for i, layer in enumerate(layers)]
    spent: dict[str, float] = {"gather": 0.0}
    for name in names:
        spent[f"forward {name}"] = spent[f"backward {name}"] = 0.0
    spent["loss forward + backward"] = spent["Adam step"] = 0.0
    order = rng.permutation(len(X))
    clock = time.perf_counter
    with trainer:
        for s in range(steps):
            t0 = clock()
            idx = order[s * BATCH : (s + 1) * BATCH]
            x, yb = X.take(idx, axis=0), y.take(idx, axis=0)
            t1 = clock()
            spent["gather"] += t1 - t0
            for name, layer in zip(names, layers, strict=True):
                x = layer.forward(x)
                t2 = clock()
                spent[f"forward {name}"] += t2 - t1
                t1 = t2
            loss.forward(x, yb)
            dout = loss.backward()
            t2 = clock()
            spent["loss forward + backward"] += t2 - t1
            t1 = t2
            for name, layer in zip(names[::-1], layers[::-1], strict=True):
                if layer is layers[0]:
                    layer.backward_params(dout)
                else:
                    dout = layer.backward(dout)
                t2 = clock()
                spent[f"backward {name}"] += t2 - t1
                t1 = t2
            optimizer.step(params)
            spent["Adam step"] += clock() - t1
    return {k: v / steps for k, v in spent.items()}


def gemm_steps(model, X, steps: int, rng, cached: bool) -> float:
    """Seconds per step of the step's 8 matrix products (run.py's mlp_products):
    on one cached batch, or on a freshly gathered batch each step."""
    products = mlp_products([layer.weight.data for layer in model.layers[::2]], BATCH)
    order = rng.permutation(len(X))
    x = np.ascontiguousarray(X[:BATCH])
    gather = 0.0
    start = time.perf_counter()
    for s in range(steps):
        if not cached:
            t = time.perf_counter()
            x = X.take(order[s * BATCH : (s + 1) * BATCH], axis=0)
            gather += time.perf_counter() - t
        products(x)
    return (time.perf_counter() - start - gather) / steps


def gemm_after(pause_s: float, W1, x, reps: int = 50) -> float:
    """Seconds of one x @ W1 (128x784 @ 784x256) issued `pause_s` after the last
    BLAS call (the pause spent in NumPy elementwise work, as Adam's is)."""
    out = np.empty((len(x), W1.shape[1]), np.float32)
    busy = np.ones(200_000, np.float32)
    times = []
    for _ in range(reps):
        np.matmul(x, W1, out=out)
        deadline = time.perf_counter() + pause_s
        while time.perf_counter() < deadline:
            np.multiply(busy, 1.0, out=busy)  # single-threaded, like Adam's passes
        start = time.perf_counter()
        np.matmul(x, W1, out=out)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gather_cost(X, rng, reps: int = 2000) -> dict[str, float]:
    """Seconds per 128-row gather: random rows of the whole set, random rows of
    a 1 MB block (cache-resident), and a contiguous slice copy."""
    block = np.ascontiguousarray(X[:320])  # 1 MB
    cases = {
        "random rows of 188 MB": lambda: X.take(rng.integers(0, len(X), BATCH), 0),
        "random rows of 1 MB": lambda: block.take(rng.integers(0, 320, BATCH), 0),
        "contiguous slice copy": lambda: X[1000 : 1000 + BATCH].copy(),
    }
    result = {}
    for name, f in cases.items():
        start = time.perf_counter()
        for _ in range(reps):
            f()
        result[name] = (time.perf_counter() - start) / reps
    return result


def fit_epoch_per_step(model, optimizer, X, y) -> tuple[float, float]:
    """fit(epochs=1) seconds per step, and minor page faults per step."""
    faults = minor_faults()
    start = time.perf_counter()
    model.fit(X, y, loss="softmax_cross_entropy", optimizer=optimizer,
              batch_size=BATCH, epochs=1, verbose=0)  # fmt: skip
    steps = -(-len(X) // BATCH)
    return (time.perf_counter() - start) / steps, (minor_faults() - faults) / steps


def profile(threads: int, steps: int, rounds: int) -> None:
    set_blas_threads(threads)
    rng = np.random.default_rng(0)
    X, y = mlp_data(60_000)
    model, optimizer = make_mlp(), gn.Adam()
    fit_epoch_per_step(model, optimizer, X[:1280], y[:1280])  # warm everything
    phases: dict[str, list[float]] = {}
    fit_step, faults, gemm_loop, gemm_cached = [], [], [], []
    for _ in range(rounds):
        for name, s in phase_profile(model, optimizer, X, y, steps, rng).items():
            phases.setdefault(name, []).append(s)
        per_step, f = fit_epoch_per_step(model, optimizer, X, y)
        fit_step.append(per_step)
        faults.append(f)
        gemm_loop.append(gemm_steps(model, X, steps, rng, cached=False))
        gemm_cached.append(gemm_steps(model, X, steps, rng, cached=True))
    med = {name: statistics.median(v) for name, v in phases.items()}
    total, fit_s = sum(med.values()), statistics.median(fit_step)
    med["fit's bookkeeping (fit step - sum of phases)"] = fit_s - total
    print(f"\n## {threads} BLAS thread(s): us per step and share of fit's step")
    print(f"{'phase':48s} {'us':>8s} {'%':>6s}")
    for name, s in med.items():
        print(f"{name:48s} {s * 1e6:8.1f} {100 * s / fit_s:6.1f}")
    print(f"{'fit(epochs=1) per step':48s} {fit_s * 1e6:8.1f}  (min-max "
          f"{min(fit_step) * 1e6:.0f}-{max(fit_step) * 1e6:.0f})")  # fmt: skip
    gemm = sum(v for k, v in med.items() if "Dense" in k)
    print(f"{'Dense layers (GEMMs + bias)':48s} {gemm * 1e6:8.1f}")
    print(f"{'7 GEMMs in a loop, fresh batch each step':48s} "
          f"{statistics.median(gemm_loop) * 1e6:8.1f}")  # fmt: skip
    print(f"{'7 GEMMs on cached operands (same batch)':48s} "
          f"{statistics.median(gemm_cached) * 1e6:8.1f}")  # fmt: skip
    print(f"{'minor page faults per fit step':48s} {statistics.median(faults):8.2f}")
    W1, x = model.layers[0].weight.data, np.ascontiguousarray(X[:BATCH])
    for pause in (0.0, 200e-6, 2e-3, 50e-3):
        print(f"{f'x @ W1 after {pause * 1e3:g} ms of elementwise work':48s} "
              f"{gemm_after(pause, W1, x) * 1e6:8.1f}")  # fmt: skip
    for name, s in gather_cost(X, rng).items():
        print(f"{f'gather 128 rows: {name}':48s} {s * 1e6:8.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=300, help="steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    facts = machine_facts()
    print(", ".join(f"{k}={v}" for k, v in facts.items()))
    openblas = {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS")}
    print(f"OPENBLAS_* in the environment: {openblas}")
    for threads in args.threads:
        profile(threads, args.steps, args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
