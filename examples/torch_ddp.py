"""Design in glassnet, train with PyTorch on 2 processes, bring it back, serve it.

Run:  python examples/torch_ddp.py [--tiny]      (needs glassnet[torch,onnx])

1. The Iris network is written and checked in glassnet (gn.gradcheck).
2. to_torch gives the same network as a torch.nn.Module: same weights, same names.
3. DistributedDataParallel trains it on 2 CPU processes (gloo): the rendezvous is
   a file store, every socket is on the loopback interface, and a timeout bounds
   the run. Each process takes half of the 150 flowers; DDP averages the two
   half-batch gradients, which is the full-batch gradient.
4. from_torch brings the trained module back: gradcheck and explain run on it, and
   the same steps taken by glassnet alone give the same weights (about 1e-15).
5. to_onnx writes it for serving; ONNX Runtime's probabilities match glassnet's.
--tiny: 20 steps instead of 300 (the test suite).
"""

import argparse
import datetime
import os
import sys
import tempfile
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import glassnet as gn
from glassnet.export import from_torch, to_onnx, to_torch

LR, MOMENTUM, WORLD_SIZE, TIMEOUT_S = 0.1, 0.9, 2, 120
LOOPBACK = "lo0" if sys.platform == "darwin" else "lo"  # gloo binds to this only


def design() -> gn.Sequential:
    block = gn.Sequential(gn.Dense(8, 8), gn.Tanh())
    return gn.Sequential(
        gn.Dense(4, 8), gn.Tanh(), gn.Residual(block), gn.Dense(8, 3), seed=0,
        dtype=np.float64,
    )  # fmt: skip


def train_worker(rank, store, model, X, y, steps, out_path) -> None:
    """One of the processes: its half of every batch, gradients averaged by DDP.
    Each builds its own module from the glassnet model: a module passed to spawn
    would share its tensors' memory between the processes (torch.multiprocessing
    does that), and every step would then be taken twice on the same weights."""
    dist.init_process_group(
        "gloo",
        init_method=f"file://{store}",
        rank=rank,
        world_size=WORLD_SIZE,
        timeout=datetime.timedelta(seconds=TIMEOUT_S),
    )
    try:
        torch.set_num_threads(1)
        module = to_torch(model).train()
        ddp = torch.nn.parallel.DistributedDataParallel(module)
        optimizer = torch.optim.SGD(ddp.parameters(), lr=LR, momentum=MOMENTUM)
        X_mine, y_mine = X[rank::WORLD_SIZE], y[rank::WORLD_SIZE]  # 75 rows each
        for _ in range(steps):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(ddp(X_mine), y_mine)
            loss.backward()  # all-reduce: the mean of the two processes' gradients
            optimizer.step()
        if rank == 0:
            torch.save(module.state_dict(), out_path)
        dist.barrier()  # neither process tears down while the other still talks
    finally:
        dist.destroy_process_group()


def train_distributed(model, X, y, steps: int, workdir: str) -> dict:
    """Spawn the processes, wait at most TIMEOUT_S, return the trained state."""
    os.environ["GLOO_SOCKET_IFNAME"] = LOOPBACK  # inherited by both processes
    store, out_path = os.path.join(workdir, "store"), os.path.join(workdir, "w.pt")
    args = (store, model, torch.from_numpy(X), torch.from_numpy(y), steps, out_path)
    context = mp.spawn(train_worker, args=args, nprocs=WORLD_SIZE, join=False)
    deadline = time.monotonic() + TIMEOUT_S
    while not context.join(timeout=max(deadline - time.monotonic(), 0)):
        if time.monotonic() >= deadline:
            for process in context.processes:
                process.terminate()
            raise TimeoutError(f"training did not finish within {TIMEOUT_S} s")
    return torch.load(out_path)


def main(argv=None) -> dict:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--tiny", action="store_true", help="20 steps")
    steps = 20 if args.parse_args(argv).tiny else 300
    X, y = gn.datasets.load_iris()
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    loss = "softmax_cross_entropy"

    model = design()  # 1. design and check in glassnet
    design_check = gn.gradcheck(model, X[:10], y[:10], loss=loss)
    print(f"gradcheck of the design: {'PASSED' if design_check.passed else 'FAILED'}")
    module = to_torch(model)  # 2. the same network in PyTorch
    print("torch state_dict:", ", ".join(module.state_dict()))

    with tempfile.TemporaryDirectory() as workdir:  # 3. DDP on 2 processes
        start = time.perf_counter()
        module.load_state_dict(train_distributed(model, X, y, steps, workdir))
        took = time.perf_counter() - start
    print(f"DDP: {WORLD_SIZE} processes x 75 rows, {steps} steps in {took:.1f} s")

    trained = from_torch(module)  # 4. back in glassnet
    alone = design()
    with gn.Trainer(alone, gn.SoftmaxCrossEntropy(), gn.SGD(LR, MOMENTUM)) as t:
        for _ in range(steps):
            t.step(X, y)
    difference = max(
        float(np.abs(p.data - q.data).max())
        for p, q in zip(trained.parameters(), alone.parameters(), strict=True)
    )
    print(
        f"DDP weights - glassnet's own {steps} steps: max |difference| {difference:.1e}"
    )
    report = gn.gradcheck(trained, X[:10], y[:10], loss=loss)
    print(f"gradcheck of the trained model: {'PASSED' if report.passed else 'FAILED'}")
    print(gn.explain(trained, (4,), batch_size=150, loss=loss).to_text()[:600])

    with tempfile.TemporaryDirectory() as workdir:  # 5. serve with ONNX Runtime
        import onnxruntime as ort

        path = os.path.join(workdir, "iris.onnx")
        to_onnx(trained, path, output="proba")
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        proba = session.run(None, {"input": X})[0]
    served = float(np.abs(proba - trained.predict_proba(X)).max())
    accuracy = float((proba.argmax(axis=1) == y).mean())
    print(f"ONNX Runtime - glassnet probabilities: max |difference| {served:.1e}")
    print(f"accuracy of the served model on the 150 flowers: {accuracy:.3f}")
    return {
        "ddp_vs_glassnet": difference,
        "gradcheck_passed": report.passed,
        "onnx_vs_glassnet": served,
        "accuracy": accuracy,
    }


if __name__ == "__main__":
    main()
