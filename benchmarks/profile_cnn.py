"""Convolution networks, glassnet against PyTorch eager, side by side in one process.

    PYTHONPATH=src python benchmarks/profile_cnn.py [--threads 1 2] [--rounds 15]
        [--cases lenet small conv1d] [--layers] [--base ../main/src]

For each thread count (NumPy's BLAS through threadpoolctl and torch.set_num_threads
both set to it) and each case, glassnet's Trainer.step (fit's hot loop) and the
equivalent torch step with copied weights run in interleaved rounds, the order
reversed every other round; medians and ratios are printed. --base loads a second
glassnet source tree (say a worktree of main, for before/after ratios) into the
same process and times its step in the same rounds. --layers times every layer's
forward and backward inside the real steps (caches and allocations as in a
step), interleaved the same way. Never a test: timings only, on a shared machine
only the ratios of one run mean something.
"""

import argparse
import importlib
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import torch_step as run_torch_step  # noqa: E402


def load_glassnet(src: str | None):
    """Import glassnet from `src` (None: the usual import) under its own module
    objects: the tree's modules are then removed from sys.modules, so a second
    tree can be imported beside it."""
    if src is not None:
        sys.path.insert(0, str(Path(src).resolve()))
    gn = importlib.import_module("glassnet")
    for name in ("glassnet.nn.layers.conv1d", "glassnet.nn.layers.pooling1d"):
        importlib.import_module(name)
    gn.Trainer, gn.losses.get_loss  # noqa: B018 - load lazy names now
    if src is not None:
        sys.path.pop(0)
        for name in [m for m in sys.modules if m.split(".")[0] == "glassnet"]:
            del sys.modules[name]
    return gn


def lenet(gn, nn):
    g = gn.Sequential(
        gn.Conv2D(1, 6, 5), gn.ReLU(), gn.MaxPool2D(2),
        gn.Conv2D(6, 16, 5), gn.ReLU(), gn.MaxPool2D(2), gn.Flatten(),
        gn.Dense(256, 120), gn.ReLU(), gn.Dense(120, 84), gn.ReLU(),
        gn.Dense(84, 10), seed=0,
    )  # fmt: skip
    t = nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10),
    )  # fmt: skip
    return g, t, (64, 1, 28, 28), 10


def small(gn, nn):
    g = gn.Sequential(
        gn.Conv2D(1, 8, 3), gn.ReLU(), gn.MaxPool2D(2),
        gn.Conv2D(8, 16, 3), gn.ReLU(), gn.MaxPool2D(2), gn.Flatten(),
        gn.Dense(16 * 5 * 5, 10), seed=0,
    )  # fmt: skip
    t = nn.Sequential(
        nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(16 * 5 * 5, 10),
    )  # fmt: skip
    return g, t, (64, 1, 28, 28), 10


def conv1d(gn, nn):
    g = gn.Sequential(
        gn.Conv1D(1, 16, 5), gn.ReLU(), gn.MaxPool1D(2),
        gn.Conv1D(16, 32, 5), gn.ReLU(), gn.GlobalAvgPool1D(), gn.Dense(32, 4),
        seed=0,
    )  # fmt: skip
    t = nn.Sequential(
        nn.Conv1d(1, 16, 5), nn.ReLU(), nn.MaxPool1d(2),
        nn.Conv1d(16, 32, 5), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
        nn.Linear(32, 4),
    )  # fmt: skip
    return g, t, (64, 1, 128), 4


CASES = {"lenet": lenet, "small": small, "conv1d": conv1d}


def copy_weights(gn, model, net) -> None:
    ours = [
        p.data.T if isinstance(layer, gn.Dense) and p is layer.weight else p.data
        for layer in model.layers
        for p in layer.parameters()
    ]
    with torch.no_grad():
        for data, t in zip(ours, net.parameters(), strict=True):
            t.copy_(torch.from_numpy(np.ascontiguousarray(data)))


class GlassnetStep:
    """Trainer.step on one batch; profile() runs the same step timing each part."""

    def __init__(self, gn, name: str) -> None:
        model, self.net, shape, K = CASES[name](gn, torch.nn)
        rng = np.random.default_rng(0)
        self.x = rng.standard_normal(shape, dtype=np.float32)
        self.y = rng.integers(0, K, shape[0])
        copy_weights(gn, model, self.net)
        loss = gn.losses.get_loss("softmax_cross_entropy")
        self.trainer = gn.Trainer(model, loss, gn.SGD(lr=0.01))
        self.trainer.__enter__()  # fit's training mode: the first layer skips dL/dx

    def __call__(self) -> float:
        return self.trainer.step(self.x, self.y)

    def profile(self, acc: list[float]) -> None:
        """One step; adds each layer's forward then backward seconds, the loss's
        and the optimizer's to acc (2 * layers + 2 entries)."""
        layers, loss = self.trainer.layers, self.trainer._step_loss
        clock = CLOCK["now"]
        n, h = len(layers), self.x
        for i, layer in enumerate(layers):
            t = clock()
            h = layer.forward(h)
            acc[i] += clock() - t
        t = clock()
        loss.forward(h, self.y)
        d = loss.backward()
        acc[2 * n] += clock() - t
        for i in range(n - 1, -1, -1):
            t = clock()
            d = layers[i].backward(d) if i else layers[i].backward_params(d)
            acc[n + i] += clock() - t
        t = clock()
        self.trainer.optimizer.step()
        acc[2 * n + 1] += clock() - t


def torch_step(net, x, y):
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    return run_torch_step(torch, net, loss_fn, opt, tx, ty)


# wall-clock time by default; --clock cpu: this process's CPU time (all its
# threads), which other processes on a shared machine disturb far less; on one
# thread it is the step's own time, on two it adds up both threads' work
CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}


def timed(fn, reps: int) -> float:
    clock = CLOCK["now"]
    start = clock()
    for _ in range(reps):
        fn()
    return (clock() - start) / reps


def compare(steps: dict, rounds: int, reps: int) -> dict:
    """Per callable: (median, fastest) seconds per step over interleaved rounds."""
    for fn in steps.values():
        timed(fn, reps)  # warm up
    times = {key: [] for key in steps}
    pairs = list(steps.items())
    for r in range(rounds):
        for key, fn in pairs if r % 2 == 0 else pairs[::-1]:
            times[key].append(timed(fn, reps))
    return {key: (statistics.median(t), min(t)) for key, t in times.items()}


def per_layer(steps: dict, rounds: int, reps: int) -> dict:
    """Per version: [forward per layer, backward per layer, loss, optimizer], each
    the fastest round (the least disturbed by other processes on a shared machine;
    the medians of the whole steps are in compare)."""
    n = len(next(iter(steps.values())).trainer.layers)
    samples = {key: [] for key in steps}
    pairs = list(steps.items())
    for r in range(rounds):
        for key, step in pairs if r % 2 == 0 else pairs[::-1]:
            acc = [0.0] * (2 * n + 2)
            for _ in range(reps):
                step.profile(acc)
            samples[key].append([a / reps for a in acc])
    return {key: np.min(np.array(s), axis=0) for key, s in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--layers", action="store_true")
    parser.add_argument("--base", help="another glassnet src tree to time beside")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    args = parser.parse_args()
    CLOCK["now"] = CLOCK[args.clock]
    versions = {}
    if args.base:
        versions["base"] = load_glassnet(args.base)
    versions["glassnet"] = load_glassnet(None)
    for key, gn in versions.items():
        print(f"{key}: {gn.__file__}")
    for n in args.threads:
        with threadpool_limits(n, user_api="blas"):
            torch.set_num_threads(n)
            for name in args.cases:
                ours = {key: GlassnetStep(gn, name) for key, gn in versions.items()}
                first = next(iter(ours.values()))
                steps = dict(ours, torch=torch_step(first.net, first.x, first.y))
                losses = {key: fn() for key, fn in steps.items()}
                assert np.ptp(list(losses.values())) < 1e-4, losses
                med = compare(steps, args.rounds, args.reps)
                text = "  ".join(f"{k} {v[0] * 1e3:6.3f} ms" for k, v in med.items())
                ratios = "  ".join(
                    f"{k}/torch {v[0] / med['torch'][0]:4.2f}"
                    f" (fastest {v[1] / med['torch'][1]:4.2f})"
                    for k, v in med.items() if k != "torch"
                )  # fmt: skip
                print(f"threads {n} {name:6s} {text}  {ratios}")
                if args.layers:
                    table = per_layer(ours, args.rounds, max(1, args.reps // 2))
                    layers = first.trainer.layers
                    names = [repr(layer)[:40] for layer in layers]
                    names += ["loss forward+backward", "optimizer step"]
                    k = len(layers)
                    for i, what in enumerate(names):
                        cells = []
                        for key, med_ in table.items():
                            f = med_[i] if i < k else med_[k + i]
                            b = med_[k + i] if i < k else 0.0
                            cells.append(f"{key} fwd {f * 1e6:6.0f} bwd {b * 1e6:6.0f}")
                        print(f"    {what:40s} " + " | ".join(cells))


if __name__ == "__main__":
    main()
