"""Benchmarks: glassnet against hand-written NumPy, PyTorch and scikit-learn.

    python benchmarks/run.py                    # every case at full size (minutes)
    python benchmarks/run.py --quick            # every case, small and short (seconds)
    python benchmarks/run.py --cases iris mlp --json results.json

Every ratio divides by the hand-written NumPy reference of the same case
(benchmarks/references.py), which does the same math as the glassnet model.

Method. The implementations of a case run in one process, interleaved round by
round (the order alternates between rounds). Each timed block is preceded by a
0.2 s pause and one untimed call: OpenBLAS and PyTorch worker threads busy-wait
for about 0.1 s after a call and would otherwise slow down whoever runs next.
A block repeats its call until it lasts about 0.2 s (0.02 s with --quick), and
the table shows the median over rounds, the min-max, and median / reference
median. PyTorch runs on as many threads as NumPy's BLAS. Nothing here changes
OPENBLAS_* variables; their values are reported with the machine.

PyTorch (torch==2.13.0), JAX and scikit-learn are optional: their rows are
skipped when they are not installed. JAX rows (benchmarks/jax_references.py)
compile the whole step, or with lax.scan the whole epoch, into one XLA program;
compilation is done before timing and reported in the row's note. With
--threads 1, XLA is limited to one thread through XLA_FLAGS, set before JAX is
imported. The import and memory cases run in fresh interpreters.
"""

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REFERENCE = "numpy"  # the row every ratio divides by
PEERS = ("torch", "sklearn", "jax jit", "jax scan")  # "faster than every peer"
# XLA's CPU flags for one thread (jax-ml/jax issues #743 and #1539): Eigen's
# single-threaded mode and an intra-op pool of one. XLA 0.10 has no flag for N > 1
# threads: without --threads 1 it uses its default pool, one thread per core.
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
PAUSE_S = 0.2  # before each timed block; --quick shortens it (timings not meaningful)
THREADS = None  # --threads, passed on to the memory case's processes


# -- machine -------------------------------------------------------------------


def blas_info() -> dict:
    """NumPy's BLAS: name, version, core type, threads (threadpoolctl if present)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        threadpool_info = None
    if threadpool_info is not None:
        for pool in threadpool_info():
            if pool.get("user_api") == "blas":
                return {
                    "name": pool.get("internal_api"),
                    "version": pool.get("version"),
                    "architecture": pool.get("architecture"),
                    "threads": pool.get("num_threads"),
                }
    # without threadpoolctl: the environment, else every CPU (OpenBLAS's default)
    env = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
    return {"name": "unknown", "threads": int(env) if env else os.cpu_count()}


def set_blas_threads(n: int) -> bool:
    """Limit NumPy's BLAS to n threads for this process (threadpoolctl needed)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return False
    threadpool_limits(n, user_api="blas")
    return True


def xla_flags(threads: int | None, flags: str) -> str:
    """XLA_FLAGS for `threads`: with 1, `flags` plus XLA_ONE_THREAD."""
    return f"{flags} {XLA_ONE_THREAD}".strip() if threads == 1 else flags


def pinned_cpus(threads: int | None, available: set[int]) -> set[int]:
    """The CPUs the process keeps: `threads` of the available ones, or all."""
    if not threads or threads >= len(available):
        return set(available)
    return set(sorted(available)[:threads])


def limit_xla_threads(threads: int | None) -> None:
    """Hold JAX to `threads` CPUs, as NumPy's BLAS and PyTorch are held.

    XLA reads XLA_FLAGS once, when JAX creates its CPU backend, so this runs
    before JAX is imported. The flags alone are not enough in XLA 0.10: its
    runtime still hands work to the threads of its pool (measured here: two
    threads busy during a one-thread mlp epoch). So the process is also pinned to
    `threads` CPUs (sched_setaffinity), which holds every implementation of a
    case alike; NumPy's BLAS and PyTorch already use that many threads.
    """
    if "jax" in sys.modules:
        raise RuntimeError("limit_xla_threads must run before jax is imported")
    flags = xla_flags(threads, os.environ.get("XLA_FLAGS", ""))
    if flags:
        os.environ["XLA_FLAGS"] = flags
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, pinned_cpus(threads, os.sched_getaffinity(0)))


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts() -> dict:
    import glassnet

    blas = blas_info()
    facts = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC"
        ),
        "cpu": cpu_name(),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": f"{blas.get('name')} {blas.get('version', '')} "
        f"({blas.get('architecture', '?')})".strip(),
        "blas_threads": blas.get("threads"),
        "glassnet": glassnet.__version__,
    }
    if hasattr(os, "sched_getaffinity"):
        facts["cpus_used"] = ",".join(map(str, sorted(os.sched_getaffinity(0))))
    for var in (
        "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "XLA_FLAGS"
    ):  # fmt: skip
        facts[var] = os.environ.get(var, "unset")
    for dist in ("torch", "scikit-learn", "jax"):
        try:  # the installed version, without importing the package
            facts[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            facts[dist] = "not installed"
    return facts


def optional(name: str):
    """The module, or None when it is not installed (benchmark-only extras)."""
    try:
        return __import__(name)
    except ImportError:
        return None


# -- timing --------------------------------------------------------------------


@dataclass
class Impl:
    """One implementation of a case: `run` does one unit of work (a step, an
    epoch); `warm`, called untimed before each block, defaults to `run`."""

    run: object
    warm: object = None
    note: str = ""
    units: int = 1  # units of work (steps, epochs) done by one call of run


@dataclass
class Case:
    name: str
    what: str
    unit: str  # "step" or "epoch"
    target: float | None  # glassnet's ratio to the reference must be at most this
    impls: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)  # implementation -> reason
    rounds: int = 15
    block_s: float = 0.2
    reps: int | None = None  # calls per block; None: calibrated to block_s
    target_impl: str | None = None  # ratios divide by this row where numpy has none
    pause_s: float = PAUSE_S
    beat: tuple = ()  # rows glassnet must be no slower than; PEERS: every peer
    floor: tuple | None = None  # (row, x): glassnet within x times that row
    steady: float | None = None  # glassnet's max / min over rounds at most this
    keep: object = None  # what the impls need alive while timed (a temporary folder)


def calibrate(impl: Impl, block_s: float) -> int:
    """Calls per timed block so that a block lasts about block_s."""
    impl.run()
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            impl.run()
        elapsed = time.perf_counter() - start
        if elapsed >= block_s / 8 or calls >= 1 << 20:
            return max(1, round(block_s * calls / elapsed))
        calls *= 4


def time_case(case: Case) -> dict[str, list[float]]:
    """Seconds per call of each implementation, one value per round."""
    reps = {
        name: case.reps or calibrate(impl, case.block_s)
        for name, impl in case.impls.items()
    }
    times: dict[str, list[float]] = {name: [] for name in case.impls}
    order = list(case.impls)
    for r in range(case.rounds):
        for name in order if r % 2 == 0 else order[::-1]:
            impl = case.impls[name]
            time.sleep(case.pause_s)  # let the last block's threads go idle
            (impl.warm or impl.run)()
            start = time.perf_counter()
            for _ in range(reps[name]):
                impl.run()
            units = reps[name] * impl.units
            times[name].append((time.perf_counter() - start) / units)
    return times


def summarize(case: Case, times: dict[str, list[float]]) -> dict:
    # ratios divide by the NumPy reference, or by the target row where a case
    # has no NumPy reference (the PyTorch-only cases)
    base = REFERENCE if REFERENCE in times else case.target_impl
    ref = statistics.median(times[base]) if base in times else None
    rows = {}
    for name, values in times.items():
        median = statistics.median(values)
        rows[name] = {
            "median_s": median,
            "min_s": min(values),
            "max_s": max(values),
            "ratio": median / ref if ref else None,
            "note": case.impls[name].note,
        }
    result = {"what": case.what, "unit": case.unit}
    result["ratio_to"] = base if ref else None
    result["rows"] = rows
    result["skipped"] = case.skipped
    result["target"], met = judge(case, rows, result["ratio_to"])
    if met is not None:
        result["met"] = met
    return result


def judge(case: Case, rows: dict, base: str | None) -> tuple[str, bool | None]:
    """The case's target in words, and whether glassnet met it (None: no
    glassnet row, or nothing to compare with)."""
    words, verdicts = [], []
    g = rows.get("glassnet")
    if case.target is not None:
        words.append(f"<= {case.target}x {base or REFERENCE}")
        if g and g["ratio"] is not None:
            verdicts.append(g["ratio"] <= case.target)
    beat = [n for n in PEERS if n in rows] if case.beat == PEERS else case.beat
    beat = [n for n in beat if n in rows]
    if beat:
        words.append("no slower than " + ", ".join(beat))
        if g:
            verdicts += [g["median_s"] <= rows[n]["median_s"] for n in beat]
    if case.floor and case.floor[0] in rows:
        row, x = case.floor
        words.append(f"<= {x}x {row}")
        if g:
            verdicts.append(g["median_s"] <= x * rows[row]["median_s"])
    if case.steady:
        words.append(f"max/min <= {case.steady}")
        if g:
            verdicts.append(g["max_s"] <= case.steady * g["min_s"])
    met = all(verdicts) if verdicts and g else None
    return ", ".join(words) or "none", met


def seconds(s: float) -> str:
    if s >= 1.0:
        return f"{s:.3f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} us"


def print_case(name: str, result: dict) -> None:
    head = f"{name}: {result['what']} (time per {result['unit']})"
    head += f"; target: glassnet {result.get('target')}"
    if result.get("ratio_to") not in (None, REFERENCE):
        head += f"; ratios to {result['ratio_to']} (no NumPy reference)"
    print(head)
    print(f"  {'implementation':<22}{'median':>11}{'min':>11}{'max':>11}{'ratio':>8}")
    for impl, row in result["rows"].items():
        ratio = f"{row['ratio']:.2f}x" if row["ratio"] is not None else "-"
        line = (
            f"  {impl:<22}{seconds(row['median_s']):>11}{seconds(row['min_s']):>11}"
            f"{seconds(row['max_s']):>11}{ratio:>8}"
        )
        print(line + (f"  {row['note']}" if row["note"] else ""))
    for impl, reason in result.get("skipped", {}).items():
        print(f"  {impl:<22}skipped: {reason}")
    if "met" in result:
        print(f"  target {'met' if result['met'] else 'MISSED'}")
    print(flush=True)


# -- shared model builders -------------------------------------------------------


def dense_weights(model) -> list:
    """[(W, b), ...] copies of a glassnet model's Dense layers, in order."""
    import glassnet as gn

    return [
        (layer.weight.data.copy(), layer.bias.data.copy())
        for layer in model.layers
        if isinstance(layer, gn.Dense)
    ]


def torch_setup():
    """The torch module on NumPy's BLAS thread count, or None if not installed."""
    torch = optional("torch")
    if torch is not None:
        torch.set_num_threads(max(1, int(blas_info().get("threads") or 1)))
    return torch


def torch_mlp(torch, model, activations: list):
    """A torch.nn.Sequential with the Dense weights of glassnet `model`;
    activations: one torch module class (or None) after each Dense."""
    layers = []
    for (W, b), act in zip(dense_weights(model), activations, strict=True):
        linear = torch.nn.Linear(*W.shape)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W.T.copy()))
            linear.bias.copy_(torch.from_numpy(b))
        layers.append(linear)
        if act is not None:
            layers.append(act())
    return torch.nn.Sequential(*layers)


def torch_step(torch, net, loss_fn, optimizer, x, y):
    """One PyTorch training step on tensors (x, y); returns the loss as a float."""

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def add_step_case(case, model, loss, optimizer, X, y, reference, epochs_per_fit):
    """glassnet's Trainer.step (fit's hot loop), fit itself, and the reference."""
    import glassnet as gn

    trainer = gn.Trainer(model, gn.losses.get_loss(loss), optimizer)
    trainer.__enter__()  # fit's training mode: the first layer skips dL/dx
    case.impls["glassnet"] = Impl(
        lambda: trainer.step(X, y), note="Trainer.step, the loop inside fit"
    )
    if reference is not None:  # else the case's ratios divide by case.target_impl
        case.impls[REFERENCE] = Impl(lambda: reference.step(X, y), note="by hand")

    def fit_per_step():
        model.fit(
            X, y, loss=loss, optimizer=optimizer, epochs=epochs_per_fit,
            batch_size=len(X), verbose=0,
        )  # fmt: skip

    note = f"fit(epochs={epochs_per_fit}), per epoch"
    case.impls["glassnet fit"] = Impl(fit_per_step, note=note, units=epochs_per_fit)


def jax_references(case: Case):
    """benchmarks/jax_references.py, or None when JAX is not installed (the JAX
    rows of `case` are then marked skipped)."""
    if optional_spec("jax") is None:
        for row in ("jax jit", "jax scan") if case.unit == "epoch" else ("jax jit",):
            case.skipped[row] = "jax is not installed"
        return None
    import jax_references as jr

    return jr


def initial_params(model) -> list[np.ndarray]:
    """Copies of every parameter of `model`, in glassnet's order."""
    return [p.data.copy() for p in model.parameters()]


def add_jax_step(case: Case, network: str, params, optimizer: str, lr: float, X, y):
    """The "jax jit" row: the network's whole training step as one compiled XLA
    program, the training state donated; compiled here, before any timing."""
    jr = jax_references(case)
    if jr is None:
        return
    stepper = jr.JaxStepper(network, params, optimizer, lr, X, y)
    compile_s = seconds(stepper.compiled.compile_s)
    case.impls["jax jit"] = Impl(
        stepper.step, note=f"jax.jit, donated state; compile {compile_s} (not timed)"
    )


# -- cases -----------------------------------------------------------------------


def case_iris(quick: bool) -> Case:
    from references import IrisReference

    import glassnet as gn

    X, y = gn.datasets.load_iris()
    X = X.astype(np.float32)
    case = Case("iris", "4-5-4-3 tanh, batch 150, SGD step", "step", 0.7, beat=PEERS)
    make = lambda: gn.Sequential(  # noqa: E731
        gn.Dense(4, 5), gn.Tanh(), gn.Dense(5, 4), gn.Tanh(), gn.Dense(4, 3), seed=0
    )
    model = make()
    reference = IrisReference(dense_weights(model), lr=0.1)
    add_step_case(case, model, "softmax_cross_entropy", gn.SGD(lr=0.1), X, y,
                  reference, 20)  # fmt: skip
    torch = torch_setup()
    if torch is None:
        case.skipped["torch"] = "torch is not installed"
    else:
        net = torch_mlp(torch, make(), [torch.nn.Tanh, torch.nn.Tanh, None])
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        tx, ty = torch.from_numpy(X), torch.from_numpy(y)
        step = torch_step(torch, net, torch.nn.CrossEntropyLoss(), opt, tx, ty)
        case.impls["torch"] = Impl(step)
    add_sklearn_classifier(case, X, y, (5, 4), "tanh", 0.1)
    add_jax_step(case, "iris", initial_params(model), "sgd", 0.1, X, y)
    return case


def add_sklearn_classifier(case, X, y, hidden, activation, lr, solver="sgd"):
    sklearn = optional("sklearn")
    if sklearn is None:
        case.skipped["sklearn"] = "scikit-learn is not installed"
        return
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(
        hidden_layer_sizes=hidden, activation=activation, solver=solver, alpha=0.0,
        batch_size=len(X), learning_rate_init=lr, momentum=0.0, random_state=0,
    )  # fmt: skip
    classes = np.unique(y)

    def step():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.partial_fit(X, y, classes=classes)

    case.impls["sklearn"] = Impl(step, note="MLPClassifier.partial_fit")


def case_xor(quick: bool) -> Case:
    from references import XorReference

    import glassnet as gn

    X, y = gn.datasets.make_xor()
    X = X.astype(np.float32)
    case = Case(
        "xor", "2-2-2 sigmoid + softmax, batch 4, SGD step", "step", None,
        beat=("jax jit",),
    )  # fmt: skip
    make = lambda: gn.Sequential.from_sizes(  # noqa: E731
        [2, 2, 2], activations=["sigmoid", "softmax"], seed=0
    )
    model = make()
    reference = XorReference(dense_weights(model), lr=1.0)
    add_step_case(case, model, "cross_entropy", gn.SGD(lr=1.0), X, y, reference, 50)
    torch = torch_setup()
    if torch is None:
        case.skipped["torch"] = "torch is not installed"
    else:
        net = torch_mlp(torch, make(), [torch.nn.Sigmoid, None])
        opt = torch.optim.SGD(net.parameters(), lr=1.0)
        tx, ty = torch.from_numpy(X), torch.from_numpy(y)
        step = torch_step(torch, net, torch.nn.CrossEntropyLoss(), opt, tx, ty)
        case.impls["torch"] = Impl(step, note="softmax in CrossEntropyLoss")
    add_sklearn_classifier(case, X, y, (2,), "logistic", 1.0)
    if "sklearn" in case.impls:
        case.impls["sklearn"].note += " (one logistic output)"
    add_jax_step(case, "xor", initial_params(model), "sgd", 1.0, X, y)
    return case


def case_autoencoder(quick: bool) -> Case:
    from references import AutoencoderReference

    import glassnet as gn

    rng = np.random.default_rng(0)
    latent = rng.standard_normal((256, 8))  # correlated data: 64 features from 8
    X = (latent @ rng.standard_normal((8, 64)) / 3).astype(np.float32)
    case = Case(
        "autoencoder", "64-32-64-64 sigmoid, sigmoid, linear, MSE, batch 256, SGD step",
        "step", 0.8, beat=PEERS,
    )  # fmt: skip
    make = lambda: gn.Sequential(  # noqa: E731
        gn.Dense(64, 32), gn.Sigmoid(), gn.Dense(32, 64), gn.Sigmoid(),
        gn.Dense(64, 64), seed=0,
    )  # fmt: skip
    model = make()
    reference = AutoencoderReference(dense_weights(model), lr=0.1)
    add_step_case(case, model, "mse", gn.SGD(lr=0.1), X, X, reference, 20)
    torch = torch_setup()
    if torch is None:
        case.skipped["torch"] = "torch is not installed"
    else:
        net = torch_mlp(torch, make(), [torch.nn.Sigmoid, torch.nn.Sigmoid, None])
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        tx = torch.from_numpy(X)
        step = torch_step(torch, net, torch.nn.MSELoss(), opt, tx, tx)
        case.impls["torch"] = Impl(step)
    if optional("sklearn") is None:
        case.skipped["sklearn"] = "scikit-learn is not installed"
    else:
        from sklearn.neural_network import MLPRegressor

        reg = MLPRegressor(
            hidden_layer_sizes=(32, 64), activation="logistic", solver="sgd",
            alpha=0.0, batch_size=256, learning_rate_init=0.1, momentum=0.0,
            random_state=0,
        )  # fmt: skip
        case.impls["sklearn"] = Impl(
            lambda: reg.partial_fit(X, X), note="MLPRegressor.partial_fit"
        )
    add_jax_step(case, "autoencoder", initial_params(model), "sgd", 0.1, X, X)
    return case


def mlp_data(n: int, seed: int = 0):
    """n synthetic float32 samples of 784 features and labels 0..9."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 784), dtype=np.float32)
    y = rng.integers(0, 10, n)
    return X, y


def make_mlp():
    import glassnet as gn

    return gn.Sequential(
        gn.Dense(784, 256), gn.ReLU(), gn.Dense(256, 128), gn.ReLU(),
        gn.Dense(128, 10), seed=0,
    )  # fmt: skip


def mlp_case(name: str, batch: int, quick: bool, sklearn: bool, **target) -> Case:
    """target: Case's target fields (target=, beat=, floor=, steady=)."""
    from references import MLPReference

    import glassnet as gn

    n = 2 * batch if quick else 60_000
    X, y = mlp_data(n)
    case = Case(
        name,
        f"784-256-128-10 ReLU, batch {batch}, Adam, one epoch of {n:,} float32 samples",
        "epoch", rounds=1 if quick else 5, reps=1, **target,
    )  # fmt: skip
    model = make_mlp()
    optimizer = gn.Adam()

    def fit_epoch():
        model.fit(X, y, loss="softmax_cross_entropy", optimizer=optimizer,
                  batch_size=batch, epochs=1, verbose=0)  # fmt: skip

    def fit_warm():  # one step through fit: wakes the threads, warms the caches
        model.fit(X[:batch], y[:batch], loss="softmax_cross_entropy",
                  optimizer=optimizer, batch_size=batch, verbose=0)  # fmt: skip

    case.impls["glassnet"] = Impl(fit_epoch, fit_warm, note="model.fit(epochs=1)")
    reference = MLPReference(dense_weights(model))
    ref_rng = np.random.default_rng(1)
    case.impls[REFERENCE] = Impl(
        lambda: reference.epoch(X, y, batch, ref_rng),
        lambda: reference.step(X[:batch], y[:batch]),
        note="by hand",
    )
    torch = torch_setup()
    if torch is None:
        case.skipped["torch"] = "torch is not installed"
    else:
        net = torch_mlp(torch, make_mlp(), [torch.nn.ReLU, torch.nn.ReLU, None])
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        loss_fn = torch.nn.CrossEntropyLoss()
        tX, ty = torch.from_numpy(X), torch.from_numpy(y)
        generator = torch.Generator().manual_seed(0)

        def torch_epoch():
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, batch):
                idx = order[start : start + batch]
                torch_step(torch, net, loss_fn, opt, tX[idx], ty[idx])()

        warm = torch_step(torch, net, loss_fn, opt, tX[:batch], ty[:batch])
        case.impls["torch"] = Impl(torch_epoch, warm)
    jr = jax_references(case)
    if jr is not None:  # compiled now: the step, a last partial batch, the scan
        epochs = jr.JaxEpochs(
            initial_params(model), X, y, batch, np.random.default_rng(1)
        )
        compile_s = seconds(epochs.compile_s)
        case.impls["jax jit"] = Impl(
            epochs.epoch_jit, epochs.one_step,
            note=f"a jax.jit step per batch; compile {compile_s} (not timed)",
        )  # fmt: skip
        case.impls["jax scan"] = Impl(
            epochs.epoch_scan, epochs.one_step,
            note=f"one lax.scan program; compile {seconds(epochs.scan.compile_s)}",
        )  # fmt: skip

    case.impls["GEMMs alone"] = gemms_alone(model, X, batch)
    if not sklearn:
        pass
    elif optional("sklearn") is None:
        case.skipped["sklearn"] = "scikit-learn is not installed"
    else:
        from sklearn.neural_network import MLPClassifier

        clf = MLPClassifier(
            hidden_layer_sizes=(256, 128), solver="adam", alpha=0.0,
            batch_size=batch, learning_rate_init=1e-3, random_state=0,
        )  # fmt: skip
        classes = np.arange(10)

        def sk_epoch():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clf.partial_fit(X, y, classes=classes)

        def sk_warm():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clf.partial_fit(X[:batch], y[:batch], classes=classes)

        case.impls["sklearn"] = Impl(sk_epoch, sk_warm, note="partial_fit (an epoch)")
    return case


def gemms_alone(model, X: np.ndarray, batch: int) -> Impl:
    """The epoch's matrix products and nothing else (forward, weight gradients,
    input gradients but the first), into preallocated arrays: a floor for the
    mlp case, which no implementation doing the same math can go below."""
    products = mlp_products([w for w, _ in dense_weights(model)], batch)
    x = np.ascontiguousarray(X[:batch])
    steps = -(-len(X) // batch)

    def epoch():
        for _ in range(steps):
            products(x)

    return Impl(epoch, note="the matrix products of the epoch only")


def mlp_products(weights, batch: int):
    """products(x): one mlp step's matrix products and nothing else, into arrays
    allocated here: forward, the weight gradients and the input gradients but
    the first's. weights: W1 (784, 256), W2 (256, 128), W3 (128, 10); x (batch, 784).
    (profile_mlp.py times the same products.)"""
    W1, W2, W3 = weights
    a1, a2 = np.empty((batch, 256), np.float32), np.empty((batch, 128), np.float32)
    z, d1, d2 = np.empty((batch, 10), np.float32), np.empty_like(a1), np.empty_like(a2)
    g1, g2, g3 = np.empty_like(W1), np.empty_like(W2), np.empty_like(W3)

    def products(x):
        np.matmul(x, W1, out=a1)
        np.matmul(a1, W2, out=a2)
        np.matmul(a2, W3, out=z)
        np.matmul(a2.T, z, out=g3)
        np.matmul(z, W3.T, out=d2)
        np.matmul(a1.T, d2, out=g2)
        np.matmul(d2, W2.T, out=d1)
        np.matmul(x.T, d1, out=g1)

    return products


def settle_allocator() -> None:
    """Free one 32 MB block, so that glibc keeps freed memory for reuse.

    glibc hands blocks of 128 KiB and more straight back to the OS until the
    process has freed a larger block; until then, code that allocates new
    temporaries every step (the hand-written loops, PyTorch, scikit-learn)
    page-faults their memory back in every step: 948 faults and +2.4 ms per mlp
    step here, doubling the hand-written loop's time. Whether a process is in that
    state depends on what it did before, so the suite puts every implementation
    in the favourable one first. glassnet, which reuses its buffers, gains
    nothing from this: the ratios are conservative.
    """
    block = np.ones(4_000_000)  # 32 MB, just under glibc's 32 MiB ceiling
    del block


def case_mlp(quick: bool) -> Case:
    return mlp_case(
        "mlp", 128, quick, sklearn=True, target=0.8, beat=("jax jit",),
        floor=("GEMMs alone", 1.7), steady=1.2,
    )  # fmt: skip


def case_mlp_large_batch(quick: bool) -> Case:
    return mlp_case(
        "mlp_large_batch", 1024, quick, sklearn=False, target=0.9, beat=("jax jit",)
    )


def case_cnn(quick: bool) -> Case:
    import glassnet as gn

    case = Case(
        "cnn", "LeNet-like on 1x28x28, batch 64, SGD step", "step", None,
        beat=("torch",),
    )  # fmt: skip
    if not hasattr(gn, "Conv2D"):
        case.skipped["glassnet"] = "gn.Conv2D does not exist yet"
        return case
    from references import LeNetReference

    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    make = lambda: gn.Sequential(  # noqa: E731
        gn.Conv2D(1, 6, 5), gn.ReLU(), gn.MaxPool2D(2),
        gn.Conv2D(6, 16, 5), gn.ReLU(), gn.MaxPool2D(2), gn.Flatten(),
        gn.Dense(256, 120), gn.ReLU(), gn.Dense(120, 84), gn.ReLU(),
        gn.Dense(84, 10), seed=0,
    )  # fmt: skip
    model = make()
    reference = LeNetReference.from_model(model, lr=0.01)
    add_step_case(case, model, "softmax_cross_entropy", gn.SGD(lr=0.01), X, y,
                  reference, 5)  # fmt: skip
    torch = torch_setup()
    if torch is None:
        case.skipped["torch"] = "torch is not installed"
    else:
        nn = torch.nn
        net = nn.Sequential(
            nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, 10),
        )  # fmt: skip
        opt = torch.optim.SGD(net.parameters(), lr=0.01)
        tx, ty = torch.from_numpy(X), torch.from_numpy(y)
        step = torch_step(torch, net, nn.CrossEntropyLoss(), opt, tx, ty)
        case.impls["torch"] = Impl(step)
    add_jax_step(case, "cnn", initial_params(make()), "sgd", 0.01, X, y)
    return case


def small_cnn_model(dtype=None):
    """conv 8@3x3 (padding 1), ReLU, pool, conv 16@3x3 (padding 1), ReLU, pool,
    Dense 784-10: 1x28x28 -> 8x14x14 -> 16x7x7 -> 10."""
    import glassnet as gn

    return gn.Sequential(
        gn.Conv2D(1, 8, 3, padding=1), gn.ReLU(), gn.MaxPool2D(2),
        gn.Conv2D(8, 16, 3, padding=1), gn.ReLU(), gn.MaxPool2D(2), gn.Flatten(),
        gn.Dense(784, 10), seed=0, dtype=dtype,
    )  # fmt: skip


def small_cnn_torch(torch, model):
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(784, 10),
    )  # fmt: skip


def case_cnn_small(quick: bool) -> Case:
    from references import SmallCNNReference

    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    what = ("conv 8@3x3 pad 1, ReLU, pool, conv 16@3x3 pad 1, ReLU, pool, "
            "Dense 784-10, batch 64, SGD step")  # fmt: skip
    reference = lambda model: SmallCNNReference.from_model(model, 0.01)  # noqa: E731
    case = torch_case("cnn_small", what, X, y, reference)
    add_jax_step(case, "cnn_small", initial_params(small_cnn_model()), "sgd", 0.01,
                 X, y)  # fmt: skip
    return case


# -- layers of issues 13 and 14: glassnet against PyTorch eager -------------------
#
# Each builder below makes the glassnet model and the PyTorch module doing the same
# math with the same weights; tests/test_benchmarks.py runs both for three steps in
# float64 and compares losses and weights.


def dense_weight_ids(layer) -> set:
    """ids of the weights of every Dense layer in `layer`'s tree: (in, out), the
    transpose of torch's Linear."""
    import glassnet as gn

    ids = {id(layer.weight)} if isinstance(layer, gn.Dense) else set()
    for _, child in layer.children():
        ids |= dense_weight_ids(child)
    return ids


def torch_twins(model, net) -> list:
    """net's parameter tensors matching model.parameters(), in glassnet's order:
    by name where every glassnet name is a torch name (a TransformerBlock in
    nn.Sequential), else in order; and whether each is transposed (Dense)."""
    ours = model.named_parameters()
    theirs = dict(net.named_parameters())
    if all(name in theirs for name, _ in ours):
        twins = [theirs[name] for name, _ in ours]
    else:
        twins = list(net.parameters())
    assert len(twins) == len(ours), (len(twins), len(ours))
    dense = dense_weight_ids(model)
    return [(t, id(p) in dense) for (_, p), t in zip(ours, twins, strict=True)]


def copy_into_torch(torch, model, net) -> None:
    """Copy glassnet `model`'s parameters into torch module `net`; Dense weights
    (in, out) are transposed into Linear's (out, in)."""
    with torch.no_grad():
        for p, (t, transposed) in zip(
            model.parameters(), torch_twins(model, net), strict=True
        ):
            data = p.data.T if transposed else p.data
            t.copy_(torch.from_numpy(np.ascontiguousarray(data)))


def conv1d_model(dtype=None):
    import glassnet as gn

    return gn.Sequential(
        gn.Conv1D(1, 16, 5), gn.ReLU(), gn.MaxPool1D(2),
        gn.Conv1D(16, 32, 5), gn.ReLU(), gn.GlobalAvgPool1D(), gn.Dense(32, 4),
        seed=0, dtype=dtype,
    )  # fmt: skip


def conv1d_torch(torch, model):
    nn = torch.nn
    net = nn.Sequential(
        nn.Conv1d(1, 16, 5), nn.ReLU(), nn.MaxPool1d(2),
        nn.Conv1d(16, 32, 5), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
        nn.Linear(32, 4),
    )  # fmt: skip
    return net


def batchnorm_model(dtype=None):
    import glassnet as gn

    return gn.Sequential(
        gn.Dense(64, 128), gn.BatchNorm1D(128), gn.ReLU(), gn.Dense(128, 10),
        seed=0, dtype=dtype,
    )  # fmt: skip


def batchnorm_torch(torch, model):
    nn = torch.nn
    return nn.Sequential(
        nn.Linear(64, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Linear(128, 10)
    )


def layernorm_model(dtype=None):
    import glassnet as gn

    return gn.Sequential(
        gn.Dense(64, 128), gn.LayerNorm(128), gn.GELU("tanh"), gn.Dense(128, 10),
        seed=0, dtype=dtype,
    )  # fmt: skip


def layernorm_torch(torch, model):
    nn = torch.nn
    return nn.Sequential(
        nn.Linear(64, 128), nn.LayerNorm(128), nn.GELU(approximate="tanh"),
        nn.Linear(128, 10),
    )  # fmt: skip


def recurrent_model(layer: str, dtype=None):
    """LSTM or GRU (32 -> 128) over (N, 40, 32) float sequences, the last step's
    hidden state, Dense 128-4."""
    import glassnet as gn

    cell = {"lstm": gn.LSTM, "gru": gn.GRU}[layer]
    return gn.Sequential(cell(32, 128), gn.Dense(128, 4), seed=0, dtype=dtype)


def recurrent_torch(torch, layer: str):
    nn = torch.nn

    class Classifier(nn.Module):
        """nn.LSTM or nn.GRU (batch first), the last step's output, Linear."""

        def __init__(self):
            super().__init__()
            self.rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[layer](
                32, 128, batch_first=True
            )
            self.linear = nn.Linear(128, 4)

        def forward(self, x):
            out, _ = self.rnn(x)  # (N, T, 128)
            return self.linear(out[:, -1])  # (N, 4)

    return Classifier()


def transformer_model(dtype=None):
    """One TransformerBlock: d 64, 4 heads, MLP 256, pre-norm, exact GELU."""
    import glassnet as gn

    block = gn.TransformerBlock(embed_dim=64, num_heads=4)
    return gn.Sequential(block, seed=0, dtype=dtype)


def transformer_torch(torch, model):
    layer = torch.nn.TransformerEncoderLayer(
        64, 4, dim_feedforward=256, dropout=0.0, activation="gelu",
        batch_first=True, norm_first=True,
    )  # fmt: skip
    return torch.nn.Sequential(layer)  # names as glassnet's: "0.norm1.weight", ...


def sequence_data(n: int, T: int = 40, D: int = 32, seed: int = 0):
    """(n, T, D) float32 sequences and (n,) labels in [0, 4)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, T, D), dtype=np.float32), rng.integers(0, 4, n)


def transformer_data(n: int, T: int = 64, seed: int = 0):
    """(n, T, 64) float32 inputs and regression targets of the same shape."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, T, 64), dtype=np.float32)
    return X, rng.standard_normal((n, T, 64), dtype=np.float32)


# case: (glassnet model builder, torch module builder, optimizer, learning rate,
# loss); the loss is glassnet's name, PyTorch's module in TORCH_LOSSES
CE = "softmax_cross_entropy"
TORCH_PAIRS = {
    "cnn_small": (small_cnn_model, small_cnn_torch, "sgd", 0.01, CE),
    "conv1d": (conv1d_model, conv1d_torch, "sgd", 0.01, CE),
    "batchnorm": (batchnorm_model, batchnorm_torch, "sgd", 0.1, CE),
    "layernorm": (layernorm_model, layernorm_torch, "sgd", 0.1, CE),
    "lstm": (
        lambda dtype=None: recurrent_model("lstm", dtype),
        lambda torch, model: recurrent_torch(torch, "lstm"),
        "adam", 1e-3, CE,
    ),
    "gru": (
        lambda dtype=None: recurrent_model("gru", dtype),
        lambda torch, model: recurrent_torch(torch, "gru"),
        "adam", 1e-3, CE,
    ),
    "transformer": (transformer_model, transformer_torch, "adam", 1e-3, "mse"),
}  # fmt: skip
TORCH_LOSSES = {"softmax_cross_entropy": "CrossEntropyLoss", "mse": "MSELoss"}


def torch_loss(torch, name: str):
    """The PyTorch loss module of case `name`."""
    return getattr(torch.nn, TORCH_LOSSES[TORCH_PAIRS[name][4]])()


def torch_pair(torch, name: str, model):
    """The torch module of case `name` with `model`'s weights, and its optimizer."""
    _, make_net, opt, lr, _ = TORCH_PAIRS[name]
    net = make_net(torch, model)
    copy_into_torch(torch, model, net)
    if opt == "sgd":
        return net, torch.optim.SGD(net.parameters(), lr=lr)
    return net, torch.optim.Adam(net.parameters(), lr=lr)


def glassnet_optimizer(name: str):
    import glassnet as gn

    _, _, opt, lr, _ = TORCH_PAIRS[name]
    return gn.SGD(lr=lr) if opt == "sgd" else gn.Adam(lr=lr)


def torch_case(name: str, what: str, X, y, reference=None) -> Case:
    """glassnet's Trainer.step and fit against PyTorch eager (target: <= torch),
    and the hand-written NumPy reference where there is one."""
    case = Case(name, what, "step", None, target_impl="torch", beat=("torch",))
    model = TORCH_PAIRS[name][0]()
    add_step_case(case, model, TORCH_PAIRS[name][4], glassnet_optimizer(name),
                  X, y, reference and reference(model), 5)  # fmt: skip
    torch = torch_setup()
    if torch is None:
        case.skipped["torch"] = "torch is not installed"
        return case
    net, opt = torch_pair(torch, name, TORCH_PAIRS[name][0]())
    tx, ty = torch.from_numpy(X), torch.from_numpy(y)
    case.impls["torch"] = Impl(
        torch_step(torch, net, torch_loss(torch, name), opt, tx, ty)
    )
    return case


def case_conv1d(quick: bool) -> Case:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 1, 128), dtype=np.float32)
    y = rng.integers(0, 4, 64)
    what = ("Conv1D(1,16,5) ReLU MaxPool1D(2) Conv1D(16,32,5) ReLU GlobalAvgPool1D "
            "Dense(32,4), batch 64, length 128, SGD step")  # fmt: skip
    case = torch_case("conv1d", what, X, y)
    case.impls["glassnet"].note += " (no NumPy reference: against torch only)"
    return case


def case_batchnorm(quick: bool) -> Case:
    from references import BatchNormMLPReference

    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 64), dtype=np.float32)
    y = rng.integers(0, 10, 256)
    what = "Dense 64-128 BatchNorm1D ReLU Dense 128-10, batch 256, SGD step"
    reference = lambda model: BatchNormMLPReference.from_model(model, 0.1)  # noqa: E731
    return torch_case("batchnorm", what, X, y, reference)


def case_layernorm(quick: bool) -> Case:
    from references import LayerNormMLPReference

    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 64), dtype=np.float32)
    y = rng.integers(0, 10, 256)
    what = "Dense 64-128 LayerNorm GELU(tanh) Dense 128-10, batch 256, SGD step"
    reference = lambda model: LayerNormMLPReference.from_model(model, 0.1)  # noqa: E731
    return torch_case("layernorm", what, X, y, reference)


def recurrent_case(layer: str) -> Case:
    X, y = sequence_data(64)
    what = (f"{layer.upper()}(32,128) last step, Dense(128,4), batch 64, T 40, "
            "Adam step")  # fmt: skip
    case = torch_case(layer, what, X, y)
    case.impls["glassnet"].note += " (no NumPy reference: against torch only)"
    return case


def case_lstm(quick: bool) -> Case:
    return recurrent_case("lstm")


def case_gru(quick: bool) -> Case:
    return recurrent_case("gru")


def case_transformer(quick: bool) -> Case:
    X, Y = transformer_data(32)
    what = ("TransformerBlock(d 64, 4 heads, MLP 256, pre-norm, GELU), MSE, "
            "batch 32, T 64, Adam step")  # fmt: skip
    case = torch_case("transformer", what, X, Y)
    case.impls["glassnet"].note += " (no NumPy reference: against torch only)"
    return case


# -- the training loop's own overhead: glassnet against glassnet ------------------


def case_cli_train(quick: bool) -> Case:
    """`glassnet train` on the README's Iris config against `fit` doing the same
    work (benchmarks/cli_train_vs_fit.py), both in this process."""
    import cli_train_vs_fit as cli

    epochs = 5 if quick else 500
    folder = tempfile.TemporaryDirectory()  # removed when the case is collected
    config = os.path.join(folder.name, "iris.toml")
    Path(config).write_text(cli.CONFIG.replace("epochs = 500", f"epochs = {epochs}"))
    what = (f"Iris 4-8-3 tanh, Adam, batch 16, validation_split 0.2, {epochs} "
            "epochs")  # fmt: skip
    case = Case("cli_train", what, "run", 1.5, target_impl="fit", rounds=5, reps=1)
    case.keep = folder
    case.impls["glassnet"] = Impl(
        lambda: cli.run_train(config), note="glassnet train config.toml -q"
    )
    case.impls["fit"] = Impl(lambda: cli.run_fit(config), note="model.fit, same work")
    return case


def case_fit_loop(quick: bool) -> Case:
    """fit(epochs=1) called N times (the scikit-learn partial_fit / Keras habit)
    against one fit(epochs=N), on Iris."""
    import glassnet as gn

    X, y = gn.datasets.load_iris()
    X = X.astype(np.float32)
    epochs = 3 if quick else 50
    what = f"Iris 4-8-3 tanh, Adam, batch 16, {epochs} epochs"
    case = Case("fit_loop", what, "epoch", 1.05, target_impl="fit", rounds=7, reps=1)

    loop, one = fit_loop_pair(gn, X, y, epochs)
    case.impls["glassnet"] = Impl(
        loop, note=f"fit(epochs=1) x {epochs}, per epoch", units=epochs
    )
    case.impls["fit"] = Impl(one, note=f"fit(epochs={epochs}), per epoch", units=epochs)
    return case


def fit_loop_pair(gn, X, y, epochs: int):
    """Two Iris 4-8-3 tanh models with Adam, batch 16: loop() trains one by
    `epochs` calls of fit(epochs=1), one() the other by a single fit(epochs=epochs).
    (benchmarks/profile_fit.py times the same pair against other trees.)"""

    def make():
        return gn.Sequential(gn.Dense(4, 8), gn.Tanh(), gn.Dense(8, 3), seed=0)

    looped, once = make(), make()
    kw = {"loss": "softmax_cross_entropy", "batch_size": 16, "verbose": 0}
    looped_opt, once_opt = gn.Adam(lr=0.01), gn.Adam(lr=0.01)

    def loop():
        for _ in range(epochs):
            looped.fit(X, y, optimizer=looped_opt, epochs=1, **kw)

    def one():
        once.fit(X, y, optimizer=once_opt, epochs=epochs, **kw)

    return loop, one


# -- mlp_long: epoch after epoch, where float32 Adam meets subnormal numbers -------


def subnormal_count(arrays) -> int | None:
    """How many entries of the float arrays are subnormal (nonzero, below the
    smallest normal number of their dtype); None without arrays."""
    if not arrays or any(a is None for a in arrays):
        return None
    count = 0
    for a in arrays:
        a = np.asarray(a)
        count += int(np.count_nonzero((a != 0) & (np.abs(a) < np.finfo(a.dtype).tiny)))
    return count


def run_mlp_long_case(quick: bool) -> dict:
    """The mlp network, Adam, many epochs on uniform inputs with random labels:
    ReLU units die, their gradients are exactly 0, and float32 Adam moments decay
    by 0.9 per step into subnormal numbers, which the CPU processes slowly. Each
    epoch is timed, implementations interleaved epoch by epoch."""
    from references import MLPReference

    import glassnet as gn

    n, epochs, batch = (256, 2, 128) if quick else (12_800, 12, 128)
    rng = np.random.default_rng(0)
    X = rng.random((n, 784), dtype=np.float32)  # uniform in [0, 1): units die
    y = rng.integers(0, 10, n)
    model, optimizer = make_mlp(), gn.Adam()
    params = initial_params(model)
    reference = MLPReference(dense_weights(model))
    ref_rng = np.random.default_rng(1)
    fit = {"loss": "softmax_cross_entropy", "batch_size": batch, "verbose": 0}
    # name: (one epoch, Adam's first moments, one untimed step before epoch 1)
    impls = {
        "glassnet": (lambda: model.fit(X, y, optimizer=optimizer, **fit),
                     lambda: [optimizer.state_arrays().get("m")],
                     lambda: model.fit(X[:batch], y[:batch], optimizer=optimizer,
                                       **fit)),
        REFERENCE: (lambda: reference.epoch(X, y, batch, ref_rng),
                    lambda: reference.m,
                    lambda: reference.step(X[:batch], y[:batch])),
    }  # fmt: skip
    skipped = {}
    if optional_spec("jax") is None:
        skipped["jax jit"] = "jax is not installed"
    else:
        import jax_references as jr

        jax_epochs = jr.JaxEpochs(
            params, X, y, batch, np.random.default_rng(1), scan=False
        )
        impls["jax jit"] = (
            jax_epochs.epoch_jit,
            lambda: jax_epochs.state[1],
            jax_epochs.one_step,
        )
    for _, _, warm in impls.values():
        warm()
    times: dict[str, list[float]] = {name: [] for name in impls}
    order = list(impls)
    for e in range(epochs):
        for name in order if e % 2 == 0 else order[::-1]:
            time.sleep(0.01 if quick else PAUSE_S)
            start = time.perf_counter()
            impls[name][0]()
            times[name].append(time.perf_counter() - start)
    rows = {}
    for name, values in times.items():
        rows[name] = {
            "epochs_s": values,
            "first_s": values[0],
            "last_s": values[-1],
            "ratio": values[-1] / values[0],
            "subnormal_m": subnormal_count(impls[name][1]()),
        }
    what = (f"784-256-128-10 ReLU, Adam, batch {batch}, {epochs} epochs of {n:,} "
            "uniform float32 samples, random labels")  # fmt: skip
    target = 1.2
    return {"what": what, "unit": "epoch", "target": f"last / first epoch <= {target}",
            "ratio_to": "its first epoch", "rows": rows, "skipped": skipped,
            "met": rows["glassnet"]["ratio"] <= target}  # fmt: skip


def print_mlp_long_case(result: dict) -> None:
    print(f"mlp_long: {result['what']}; target: glassnet {result['target']}")
    print(f"  {'implementation':<16}{'first':>11}{'last':>11}{'last/first':>12}"
          f"{'subnormal m':>13}  every epoch")  # fmt: skip
    for name, row in result["rows"].items():
        every = " ".join(f"{t:.3f}" for t in row["epochs_s"])
        sub = "-" if row["subnormal_m"] is None else f"{row['subnormal_m']:,}"
        print(f"  {name:<16}{seconds(row['first_s']):>11}{seconds(row['last_s']):>11}"
              f"{row['ratio']:>11.2f}x{sub:>13}  {every} s")  # fmt: skip
    for name, reason in result["skipped"].items():
        print(f"  {name:<16}skipped: {reason}")
    print(f"  target {'met' if result['met'] else 'MISSED'}\n", flush=True)


# -- fresh-interpreter cases ----------------------------------------------------


def peak_rss_kib() -> int:
    """This process's peak resident set size in KiB. On Linux from VmHWM: unlike
    ru_maxrss, it starts afresh at exec, so a child does not inherit its parent's
    peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # macOS: bytes


# Run in a fresh interpreter; reads its peak RSS without importing anything more.
IMPORT_CODE = """
import json, sys, time
start = time.perf_counter()
import {module}
elapsed = time.perf_counter() - start
with open("/proc/self/status") as status:
    peak = [int(line.split()[1]) for line in status if line.startswith("VmHWM:")][0]
heavy = sorted(m for m in ("tqdm", "torch", "sklearn", "matplotlib", "safetensors",
                           "scipy", "pandas", "jax")
               if m in sys.modules and m != "{module}")
print(json.dumps({{"import_s": elapsed, "peak_rss_kib": peak, "heavy": heavy}}))
"""
IMPORT_CODE_NOT_LINUX = IMPORT_CODE.replace(
    'with open("/proc/self/status") as status:\n    peak = [int(line.split()[1]) for '
    'line in status if line.startswith("VmHWM:")][0]',
    "import resource; peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss",
)


def fresh_python(args: list[str], env=None) -> tuple[dict, float]:
    """Run this interpreter on args; returns (the JSON it printed, wall seconds)."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, check=True, env=env
    )
    wall = time.perf_counter() - start
    return json.loads(done.stdout.strip().splitlines()[-1]), wall


def run_import_case(quick: bool) -> dict:
    modules = ["numpy", "glassnet"] + ([] if quick else ["sklearn", "torch"])
    runs = 1 if quick else 5
    code = IMPORT_CODE if Path("/proc/self/status").exists() else IMPORT_CODE_NOT_LINUX
    # As after any normal install, the modules' bytecode is cached: one untimed
    # import per module writes it (into a temporary folder, not the source tree),
    # even where PYTHONDONTWRITEBYTECODE is set, which would otherwise make every
    # import compile glassnet from source (40 ms here).
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    rows, skipped = {}, {}
    with tempfile.TemporaryDirectory() as cache:
        env["PYTHONPYCACHEPREFIX"] = cache
        for module in modules:
            if module not in ("numpy", "glassnet") and optional_spec(module) is None:
                skipped[module] = f"{module} is not installed"
                continue
            args = ["-c", code.format(module=module)]
            fresh_python(args, env)  # untimed: writes the bytecode cache
            results = [fresh_python(args, env)[::-1] for _ in range(runs)]
            walls = [w for w, _ in results]
            rows[module] = {
                "wall_s": statistics.median(walls),
                "min_s": min(walls),
                "max_s": max(walls),
                "import_s": statistics.median(o["import_s"] for _, o in results),
                "peak_rss_mib": max(o["peak_rss_kib"] for _, o in results) / 1024,
                "heavy_modules": results[0][1]["heavy"],
            }
    g = rows["glassnet"]
    met = g["wall_s"] <= 0.2 and g["peak_rss_mib"] <= 40 and not g["heavy_modules"]
    return {"what": "fresh interpreter: python -c 'import X'", "unit": "process",
            "target": "<= 0.2 s and <= 40 MiB", "rows": rows, "skipped": skipped,
            "met": met}  # fmt: skip


def optional_spec(name: str):
    import importlib.util

    return importlib.util.find_spec(name)


def print_import_case(result: dict) -> None:
    print(f"import: {result['what']}; target: glassnet {result['target']}")
    print(f"  {'module':<12}{'wall':>10}{'min':>10}{'max':>10}{'import':>10}"
          f"{'peak RSS':>12}  optional modules loaded")  # fmt: skip
    for name, row in result["rows"].items():
        heavy = ", ".join(row["heavy_modules"]) or "none"
        print(f"  {name:<12}{seconds(row['wall_s']):>10}{seconds(row['min_s']):>10}"
              f"{seconds(row['max_s']):>10}{seconds(row['import_s']):>10}"
              f"{row['peak_rss_mib']:>8.1f} MiB  {heavy}")  # fmt: skip
    for name, reason in result["skipped"].items():
        print(f"  {name:<12}skipped: {reason}")
    print(f"  target {'met' if result['met'] else 'MISSED'}\n", flush=True)


def memory_worker(impl: str, n: int, batch: int) -> None:
    """Child process: data, then one mlp epoch; prints peak RSS before and after."""
    sys.path.insert(0, str(HERE))
    X, y = mlp_data(n)
    if impl == "glassnet":
        import glassnet as gn

        model = make_mlp()
        before = peak_rss_kib()
        model.fit(X, y, loss="softmax_cross_entropy", optimizer=gn.Adam(),
                  batch_size=batch, epochs=1, verbose=0)  # fmt: skip
    elif impl == REFERENCE:
        from references import MLPReference

        rng = np.random.default_rng(0)
        weights = []
        for d, m in [(784, 256), (256, 128), (128, 10)]:  # He init, as glassnet's
            W = rng.normal(0.0, np.sqrt(2.0 / d), (d, m)).astype(np.float32)
            weights.append((W, np.zeros(m, np.float32)))
        reference = MLPReference(weights)
        before = peak_rss_kib()
        reference.epoch(X, y, batch, np.random.default_rng(1))
    else:  # torch
        import torch

        torch.set_num_threads(max(1, int(blas_info().get("threads") or 1)))
        net = torch.nn.Sequential(
            torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128),
            torch.nn.ReLU(), torch.nn.Linear(128, 10),
        )  # fmt: skip
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        loss_fn = torch.nn.CrossEntropyLoss()
        tX, ty = torch.from_numpy(X), torch.from_numpy(y)
        before = peak_rss_kib()
        order = torch.randperm(n)
        for start in range(0, n, batch):
            idx = order[start : start + batch]
            torch_step(torch, net, loss_fn, opt, tX[idx], ty[idx])()
    print(json.dumps({"before_kib": before, "peak_kib": peak_rss_kib()}))


def run_memory_case(quick: bool) -> dict:
    n = 4096 if quick else 60_000
    impls = ["glassnet", REFERENCE] + ([] if quick else ["torch"])
    rows, skipped = {}, {}
    for impl in impls:
        if impl == "torch" and optional_spec("torch") is None:
            skipped["torch"] = "torch is not installed"
            continue
        args = [str(Path(__file__).resolve()), "--memory-worker", impl, str(n), "128"]
        if THREADS:
            args += ["--threads", str(THREADS)]
        out, _ = fresh_python(args)
        rows[impl] = {"before_mib": out["before_kib"] / 1024,
                      "peak_mib": out["peak_kib"] / 1024}  # fmt: skip
    ref = rows[REFERENCE]["peak_mib"]
    for row in rows.values():
        row["ratio"] = row["peak_mib"] / ref
    return {"what": f"peak RSS of a process running one mlp epoch ({n:,} samples, "
            f"batch 128)", "unit": "process", "target": f"<= 1.2x {REFERENCE}",
            "ratio_to": REFERENCE,
            "rows": rows, "skipped": skipped,
            "met": rows["glassnet"]["ratio"] <= 1.2}  # fmt: skip


def print_memory_case(result: dict) -> None:
    print(f"memory: {result['what']}; target: glassnet {result['target']}")
    print(f"  {'implementation':<16}{'before epoch':>14}{'peak':>12}{'ratio':>8}")
    for name, row in result["rows"].items():
        print(f"  {name:<16}{row['before_mib']:>10.1f} MiB{row['peak_mib']:>8.1f} MiB"
              f"{row['ratio']:>7.2f}x")  # fmt: skip
    for name, reason in result["skipped"].items():
        print(f"  {name:<16}skipped: {reason}")
    print(f"  target {'met' if result['met'] else 'MISSED'}\n", flush=True)


# -- main ------------------------------------------------------------------------

TIMED_CASES = {
    "iris": case_iris,
    "xor": case_xor,
    "mlp": case_mlp,
    "mlp_large_batch": case_mlp_large_batch,
    "autoencoder": case_autoencoder,
    "cnn": case_cnn,
    "conv1d": case_conv1d,
    "batchnorm": case_batchnorm,
    "layernorm": case_layernorm,
    "cnn_small": case_cnn_small,
    "lstm": case_lstm,
    "gru": case_gru,
    "transformer": case_transformer,
    "cli_train": case_cli_train,
    "fit_loop": case_fit_loop,
}
CASES = [*TIMED_CASES, "mlp_long", "import", "memory"]


def run_timed_case(name: str, quick: bool) -> dict:
    case = TIMED_CASES[name](quick)
    if quick:  # a smoke test: every implementation runs, the times mean little
        case.rounds, case.block_s, case.pause_s = 1, 0.01, 0.01
    if not case.impls:
        return {"what": case.what, "unit": case.unit, "target": "none",
                "rows": {}, "skipped": case.skipped}  # fmt: skip
    return summarize(case, time_case(case))


def print_summary(results: dict) -> None:
    print("summary: glassnet against its targets")
    for name, result in results.items():
        rows = result.get("rows", {})
        if name == "import" and "glassnet" in rows:
            g = rows["glassnet"]
            got = f"{g['wall_s']:.3f} s, {g['peak_rss_mib']:.1f} MiB"
        elif "glassnet" in rows and rows["glassnet"].get("ratio") is not None:
            got = f"{rows['glassnet']['ratio']:.2f}x {result.get('ratio_to')}"
        else:
            print(f"  {name:<17}skipped")
            continue
        verdict = {True: "met", False: "MISSED"}.get(result.get("met"), "-")
        print(f"  {name:<17}{got:<26}{verdict:<8}target {result.get('target')}")


def markdown(facts: dict, results: dict) -> str:
    """The machine and every table, as Markdown (benchmarks/README.md's tables)."""
    lines = ["| machine | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in facts.items()]
    for name, result in results.items():
        target = result.get("target")
        verdict = {True: "met", False: "**missed**"}.get(result.get("met"), "-")
        lines += ["", f"**{name}**: {result['what']}; target {target}: {verdict}"]
        if result.get("ratio_to") not in (None, REFERENCE):
            lines[-1] += f" (ratios to {result['ratio_to']}: no NumPy reference)"
        lines += [""]
        if name == "import":
            lines += ["| module | wall median | min - max | import | peak RSS |"]
            lines += ["|---|---|---|---|---|"]
            for module, row in result["rows"].items():
                lines.append(
                    f"| {module} | {seconds(row['wall_s'])} | {seconds(row['min_s'])}"
                    f" - {seconds(row['max_s'])} | {seconds(row['import_s'])} | "
                    f"{row['peak_rss_mib']:.1f} MiB |"
                )
        elif name == "mlp_long":
            lines += ["| implementation | first epoch | last epoch | last / first "
                      "| subnormal Adam m at the end | every epoch (s) |"]  # fmt: skip
            lines += ["|---|---|---|---|---|---|"]
            for impl, row in result["rows"].items():
                every = " ".join(f"{t:.3f}" for t in row["epochs_s"])
                sub = "-" if row["subnormal_m"] is None else f"{row['subnormal_m']:,}"
                lines.append(
                    f"| {impl} | {seconds(row['first_s'])} | {seconds(row['last_s'])}"
                    f" | {row['ratio']:.2f}x | {sub} | {every} |"
                )
        elif name == "memory":
            lines += ["| implementation | RSS before the epoch | peak RSS | ratio |"]
            lines += ["|---|---|---|---|"]
            for impl, row in result["rows"].items():
                lines.append(
                    f"| {impl} | {row['before_mib']:.1f} MiB | {row['peak_mib']:.1f} "
                    f"MiB | {row['ratio']:.2f}x |"
                )
        else:
            lines += [f"| implementation | median per {result['unit']} | min - max "]
            lines[-1] += "| ratio | |"
            lines += ["|---|---|---|---|---|"]
            for impl, row in result["rows"].items():
                ratio = f"{row['ratio']:.2f}x" if row["ratio"] is not None else "-"
                lines.append(
                    f"| {impl} | {seconds(row['median_s'])} | {seconds(row['min_s'])}"
                    f" - {seconds(row['max_s'])} | {ratio} | {row['note']} |"
                )
        for impl, reason in result.get("skipped", {}).items():
            lines.append(f"| {impl} | skipped: {reason} | | | |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=CASES)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--markdown", type=Path, help="also write the tables here, as Markdown"
    )
    parser.add_argument(
        "--threads", type=int,
        help="limit NumPy's BLAS (and PyTorch) to this many threads (threadpoolctl)",
    )  # fmt: skip
    parser.add_argument("--memory-worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads and not set_blas_threads(args.threads):
        parser.error("--threads needs threadpoolctl (pip install threadpoolctl)")
    limit_xla_threads(args.threads)  # and pins the process to that many CPUs
    global THREADS
    THREADS = args.threads
    if args.memory_worker:
        impl, n, batch = args.memory_worker
        memory_worker(impl, int(n), int(batch))
        return 0
    sys.path.insert(0, str(HERE))  # references.py
    settle_allocator()
    facts = machine_facts()
    print("glassnet benchmarks" + (" (--quick)" if args.quick else ""))
    for key, value in facts.items():
        print(f"  {key}: {value}")
    print(flush=True)
    results = {}
    for name in args.cases:
        if name == "import":
            results[name] = run_import_case(args.quick)
            print_import_case(results[name])
        elif name == "memory":
            results[name] = run_memory_case(args.quick)
            print_memory_case(results[name])
        elif name == "mlp_long":
            results[name] = run_mlp_long_case(args.quick)
            print_mlp_long_case(results[name])
        else:
            results[name] = run_timed_case(name, args.quick)
            print_case(name, results[name])
    print_summary(results)
    if args.json:
        payload = {"machine": facts, "quick": args.quick, "cases": results}
        args.json.write_text(json.dumps(payload, indent=2))
    if args.markdown:
        args.markdown.write_text(markdown(facts, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
