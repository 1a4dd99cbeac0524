"""fit's fixed overhead, timed side by side against other glassnet trees.

    python benchmarks/profile_fit.py [--base NAME=SRC ...] [--rounds 15] [--threads 1]
        [--cases iris autoencoder fit_loop fit_once] [--profile iris]

Every tree (this one, "new", and each --base) is imported in one process under
its own module objects; before a tree's block of calls its modules are put
back into sys.modules, so the lazy imports inside it (model.fit's) find its
own code. Rounds interleave the trees, in reversed order every other round;
medians and ratios to the first --base are printed. Blocks are timed in the
process's CPU time (time.process_time), which leaves out the time spent waiting
for a core on a shared machine. --profile runs cProfile
on this tree's case and prints the top of the cumulative table.

Cases (all through model.fit, verbose=0):
  iris: 4-5-4-3 tanh, batch 150, SGD, fit(epochs=20) per epoch (run.py's row)
  autoencoder: 64-32-64-64, MSE, batch 256, SGD, fit(epochs=20) per epoch
  fit_loop: Iris 4-8-3 tanh, Adam, batch 16: 50 x fit(epochs=1) / fit(epochs=50)
  fit_once: one fit(epochs=1) of the iris model (one step): the fixed cost
"""

import argparse
import importlib
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from run import fit_loop_pair as run_fit_loop_pair  # benchmarks/run.py

HERE = Path(__file__).resolve().parent
# CPU time of this process: on a machine shared with other jobs, the time this
# process waited for a core is left out (wall time counts it). One BLAS thread.
CLOCK = time.process_time


def load_tree(src: str) -> dict:
    """The glassnet modules of the tree at `src`, imported and then removed from
    sys.modules (swap_in puts them back)."""
    for name in [m for m in sys.modules if m.split(".")[0] == "glassnet"]:
        del sys.modules[name]
    sys.path.insert(0, str(Path(src).resolve()))
    gn = importlib.import_module("glassnet")
    gn.Trainer, gn.losses.get_loss, gn.fit  # noqa: B018 - load lazy names now
    for name in ("glassnet.train.loop", "glassnet.training"):
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    sys.path.pop(0)
    modules = {m: v for m, v in sys.modules.items() if m.split(".")[0] == "glassnet"}
    for name in modules:
        del sys.modules[name]
    return modules


def swap_in(modules: dict) -> None:
    for name in [m for m in sys.modules if m.split(".")[0] == "glassnet"]:
        del sys.modules[name]
    sys.modules.update(modules)


def iris_data(gn):
    X, y = gn.datasets.load_iris()
    return X.astype(np.float32), y


def case_iris(gn, epochs=20):
    X, y = iris_data(gn)
    model = gn.Sequential(
        gn.Dense(4, 5), gn.Tanh(), gn.Dense(5, 4), gn.Tanh(), gn.Dense(4, 3), seed=0
    )
    opt = gn.SGD(lr=0.1)

    def run():
        model.fit(X, y, loss="softmax_cross_entropy", optimizer=opt, epochs=epochs,
                  batch_size=len(X), verbose=0)  # fmt: skip

    return run, epochs


def case_autoencoder(gn, epochs=20):
    rng = np.random.default_rng(0)
    latent = rng.standard_normal((256, 8))
    X = (latent @ rng.standard_normal((8, 64)) / 3).astype(np.float32)
    model = gn.Sequential(
        gn.Dense(64, 32), gn.Sigmoid(), gn.Dense(32, 64), gn.Sigmoid(),
        gn.Dense(64, 64), seed=0,
    )  # fmt: skip
    opt = gn.SGD(lr=0.1)

    def run():
        model.fit(X, X, loss="mse", optimizer=opt, epochs=epochs, batch_size=len(X),
                  verbose=0)  # fmt: skip

    return run, epochs


def fit_loop_pair(gn, epochs=50):
    loop, one = run_fit_loop_pair(gn, *iris_data(gn), epochs)  # run.py's fit_loop
    return loop, one, epochs


def case_fit_once(gn):
    X, y = iris_data(gn)
    model = gn.Sequential(
        gn.Dense(4, 5), gn.Tanh(), gn.Dense(5, 4), gn.Tanh(), gn.Dense(4, 3), seed=0
    )
    opt = gn.SGD(lr=0.1)

    def run():
        model.fit(X, y, loss="softmax_cross_entropy", optimizer=opt, epochs=1,
                  batch_size=len(X), verbose=0)  # fmt: skip

    return run, 1


def time_rows(rows: dict, rounds: int, block_s: float = 0.05) -> dict:
    """rows: {label: (modules, run, units)} -> {label: [seconds per unit]}."""
    reps = {}
    for label, (modules, run, _units) in rows.items():
        swap_in(modules)
        run()
        start, calls = time.perf_counter(), 0
        while time.perf_counter() - start < block_s / 4:
            run()
            calls += 1
        reps[label] = max(1, round(calls * block_s / (time.perf_counter() - start)))
    times = {label: [] for label in rows}
    order = list(rows)
    for r in range(rounds):
        for label in order if r % 2 == 0 else order[::-1]:
            modules, run, units = rows[label]
            swap_in(modules)
            run()
            start = CLOCK()
            for _ in range(reps[label]):
                run()
            times[label].append((CLOCK() - start) / (reps[label] * units))
    return times


def report(name: str, times: dict, base: str) -> None:
    """Medians and minimums (the minimum: the block least disturbed by other
    processes on a shared machine), with their ratios to `base`."""
    ref, ref_min = statistics.median(times[base]), min(times[base])
    print(f"{name}:  (median, ratio; min, ratio)")
    for label, values in times.items():
        med, low = statistics.median(values), min(values)
        print(
            f"  {label:16s} {med * 1e6:9.1f} us {med / ref:6.3f}   "
            f"{low * 1e6:9.1f} us {low / ref_min:6.3f}"
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", action="append", default=[], help="NAME=SRC")
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--threads", type=int, default=1)
    cases = ["iris", "autoencoder", "fit_loop", "fit_once"]
    parser.add_argument("--cases", nargs="+", default=cases)
    parser.add_argument("--profile", help="cProfile this tree's case")
    args = parser.parse_args(argv)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    except ImportError:
        pass
    trees = {}
    for spec in args.base:
        name, src = spec.split("=", 1)
        trees[name] = load_tree(src)
    trees["new"] = load_tree(str(HERE.parent / "src"))
    print("OPENBLAS_CORETYPE", os.environ.get("OPENBLAS_CORETYPE"),
          "OPENBLAS_L2_SIZE", os.environ.get("OPENBLAS_L2_SIZE"))  # fmt: skip
    if args.profile:
        import cProfile
        import pstats

        swap_in(trees["new"])
        gn = trees["new"]["glassnet"]
        if args.profile in ("fit_loop", "fit_loop_once"):
            loop, one, _ = fit_loop_pair(gn, 5)
            run = loop if args.profile == "fit_loop" else one
        else:
            maker = {"iris": case_iris, "autoencoder": case_autoencoder,
                     "fit_once": case_fit_once}[args.profile]  # fmt: skip
            run, _ = maker(gn)
        for _ in range(200):
            run()
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(2000):
            run()
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(40)
        return 0
    base = next(iter(trees))
    makers = {"iris": case_iris, "autoencoder": case_autoencoder,
              "fit_once": case_fit_once}  # fmt: skip
    for case in args.cases:
        rows = {}
        if case == "fit_loop":
            for name, modules in trees.items():
                swap_in(modules)
                loop, one, units = fit_loop_pair(modules["glassnet"])
                rows[f"{name} loop"] = (modules, loop, units)
                rows[f"{name} once"] = (modules, one, units)
            times = time_rows(rows, args.rounds, block_s=0.1)
            report(case, times, f"{base} loop")
            for name in trees:
                loop_t, once_t = times[f"{name} loop"], times[f"{name} once"]
                ratio = statistics.median(loop_t) / statistics.median(once_t)
                low = min(loop_t) / min(once_t)
                print(f"  {name}: loop / once = {ratio:.3f} (median), {low:.3f} (min)")
            continue
        for name, modules in trees.items():
            swap_in(modules)
            run, units = makers[case](modules["glassnet"])
            rows[name] = (modules, run, units)
        report(case, time_rows(rows, args.rounds), base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
