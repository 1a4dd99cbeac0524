"""fit's shortcut for History-only runs gives the answers of the long way: no
batch hooks exactly when no callback defines one."""

import pytest

import glassnet as gn
from glassnet.train.callbacks import TrainingRun
from glassnet.train.loop import _BatchHooks


class CountsSteps(gn.Callback):
    def __init__(self):
        self.steps = 0

    def on_batch_end(self, batch, logs):
        self.steps += 1


@pytest.mark.parametrize("extra, active", [([], False), ([CountsSteps()], True)])
def test_batch_hooks_run_exactly_when_a_callback_defines_them(extra, active):
    X, y = gn.datasets.make_blobs(32, 3, 3, seed=0)
    model = gn.Sequential(gn.Dense(3, 4), gn.Tanh(), gn.Dense(4, 3), seed=0)
    history = gn.History()
    run = TrainingRun(model, gn.SGD(lr=0.1), gn.MeanSquaredError(), None, history, 1)
    assert _BatchHooks([history, *extra], run).active is active
    model.fit(X, y, epochs=2, batch_size=8, verbose=0, callbacks=extra)
    assert [cb.steps for cb in extra] == ([8] if active else [])
