"""A notebook executed in a real Jupyter kernel (nbclient): plots show as PNG
images without magics, progress is one updating output (never a line per
epoch), verbose=2 stays short, and every report has an HTML view.

Every cell runs twice, in two kernels: one with ipywidgets (progress is tqdm's
notebook widget) and one where a first cell hides ipywidgets (progress is one
text line rewritten in place), so both front ends are tested in one
environment."""

import os
import re
import subprocess
import sys
import types
from collections import Counter

import ipykernel  # noqa: F401  the kernel; nbclient, nbformat, ipykernel,
import ipywidgets  # noqa: F401  ipywidgets and matplotlib come with the [test]
import nbclient  # extra
import nbformat
import pytest

from glassnet import _notebook

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"

HIDE_IPYWIDGETS = """\
import sys
sys.modules["ipywidgets"] = None  # `import ipywidgets` now raises ImportError
"""

SETUP = """\
import sys
import glassnet as gn
X, y = gn.datasets.load_iris()
X = (X - X.mean(axis=0)) / X.std(axis=0)
model = gn.Sequential(gn.Dense(4, 5), gn.Tanh(), gn.Dense(5, 3), seed=0)
"""

SLOW_FIT = """\
import time

class Slow(gn.Callback):  # 300 epochs over ~2 s, so the display updates on the way
    def on_epoch_end(self, epoch, logs):
        time.sleep(0.007)

history = model.fit(X, y, epochs=300, verbose=1, callbacks=[Slow()])
"""

WIDGETS = """\
try:
    import ipywidgets
    print("ipywidgets", ipywidgets.__version__)
except ImportError:
    print("no ipywidgets")
"""

CELLS = {  # name -> source; each cell's outputs are checked below
    "setup": SETUP,
    "light": "print([m for m in ('tqdm', 'ipywidgets') if sys.modules.get(m)])",
    "fit_auto": "history = model.fit(X, y, epochs=300, validation_split=0.2)",
    "fit_1": "history = model.fit(X, y, epochs=300, verbose=1)",
    "fit_slow": SLOW_FIT,
    "classifier": (
        "from glassnet.sklearn import GlassClassifier\n"
        "clf = GlassClassifier(hidden_layer_sizes=(5,), epochs=300, verbose=1)\n"
        "clf = clf.fit(X, y)"
    ),
    "early": (
        "stop = gn.EarlyStopping(monitor='loss', patience=1, min_delta=10.0)\n"
        "history = model.fit(X, y, epochs=300, verbose=1, callbacks=[stop])"
    ),
    "fit_2": "history = model.fit(X, y, epochs=300, verbose=2)",
    "plot": "gn.plot.history(history)",
    "plot_filters": "gn.plot.filters(gn.Conv2D(1, 4, 3))",
    "summary": "model.summary((4,))",
    "explain": "gn.explain(model, (4,), loss='softmax_cross_entropy')",
    "flow": "gn.gradient_flow(model, X, y, loss='softmax_cross_entropy')",
    "gradcheck": "gn.gradcheck(model, X[:5], y[:5], loss='softmax_cross_entropy')",
    "widgets": WIDGETS,
}
PROGRESS_CELLS = ["fit_auto", "fit_1", "fit_slow", "classifier"]


class RecordingClient(nbclient.NotebookClient):
    """A NotebookClient that also counts the kernel's messages, per cell."""

    def process_message(self, msg, cell, cell_index):
        self.counts.setdefault(cell_index, Counter())[msg["msg_type"]] += 1
        return super().process_message(msg, cell, cell_index)


class Executed:
    """One executed notebook: outputs and message counts by cell name, and the
    widgets' final state."""

    def __init__(self, kernel: str) -> None:
        self.kernel = kernel
        cells = ([HIDE_IPYWIDGETS] if kernel == "no ipywidgets" else []) + list(
            CELLS.values()
        )
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
        client = RecordingClient(nb, timeout=120, kernel_name="python3")
        client.counts = {}
        with glassnet_on_the_kernels_path():
            client.execute()
        first = len(cells) - len(CELLS)  # the hiding cell is not one of CELLS
        self.outputs = {
            n: c.outputs for n, c in zip(CELLS, nb.cells[first:], strict=True)
        }
        counts = client.counts
        self.messages = {
            n: counts.get(first + i, Counter()) for i, n in enumerate(CELLS)
        }
        state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {})
        self.widgets = {k: v["state"] for k, v in state.get("state", {}).items()}

    def bar(self, cell: str) -> tuple[dict, str]:
        """(the progress widget's bar state, its text) for a cell's one widget."""
        (output,) = self.outputs[cell]
        box = self.widgets[output["data"][WIDGET_VIEW]["model_id"]]
        children = [self.widgets[c.removeprefix("IPY_MODEL_")] for c in box["children"]]
        bars = [c for c in children if "bar_style" in c]
        text = " ".join(c["value"] for c in children if "bar_style" not in c)
        return bars[0], text.replace("\u2007", " ").replace("&lt;", "<")


class glassnet_on_the_kernels_path:
    """The kernel imports this copy of glassnet, not another."""

    def __enter__(self):
        import glassnet

        src = os.path.dirname(os.path.dirname(glassnet.__file__))
        self.path = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (src, self.path) if p)

    def __exit__(self, *exc):
        if self.path is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = self.path


@pytest.fixture(scope="module", params=["ipywidgets", "no ipywidgets"])
def executed(request) -> Executed:
    """One kernel that ran every cell in order, with or without ipywidgets."""
    return Executed(request.param)


def test_the_kernel_ran_every_cell_without_error(executed):
    errors = [
        o
        for outs in executed.outputs.values()
        for o in outs
        if o.output_type == "error"
    ]
    assert not errors, errors


def test_each_kernel_has_the_ipywidgets_it_should(executed):
    text = text_of(executed.outputs["widgets"])
    if executed.kernel == "ipywidgets":
        assert text.startswith("ipywidgets 8"), text
    else:
        assert text == "no ipywidgets\n", text


def test_importing_glassnet_in_a_kernel_loads_neither_tqdm_nor_ipywidgets(executed):
    assert text_of(executed.outputs["light"]) == "[]\n"


def mime_types(outputs) -> set[str]:
    return {m for o in outputs for m in o.get("data", {})}


def text_of(outputs) -> str:
    parts = []
    for o in outputs:
        parts.append(o.get("text", ""))
        parts.append(o.get("data", {}).get("text/plain", ""))
    return "".join(parts)


@pytest.mark.parametrize("cell", ["plot", "plot_filters"])
def test_a_plot_is_a_png_image_in_a_fresh_kernel(executed, cell):
    assert "image/png" in mime_types(executed.outputs[cell]), executed.outputs[cell]


@pytest.mark.parametrize("cell", PROGRESS_CELLS)
def test_progress_is_one_output_whose_text_ends_at_the_last_epoch(executed, cell):
    outputs = executed.outputs[cell]
    assert len(outputs) == 1, outputs  # no stream: no line per epoch, no warning
    assert outputs[0]["output_type"] == "display_data", outputs
    text = outputs[0]["data"]["text/plain"]
    assert text.startswith("epoch 300/300 ("), text  # the final metrics, once
    assert text.count("epoch") == 1 and len(re.findall(r"\bloss=", text)) == 1, text
    assert "accuracy=" in text, text
    if cell == "fit_auto":
        assert "val_loss=" in text and "val_accuracy=" in text, text


@pytest.mark.parametrize("cell", PROGRESS_CELLS)
def test_with_ipywidgets_progress_is_tqdms_widget_without_it_text(executed, cell):
    outputs = executed.outputs[cell]
    if executed.kernel == "ipywidgets":
        assert WIDGET_VIEW in mime_types(outputs), outputs
        bar, text = executed.bar(cell)
        assert (bar["value"], bar["max"], bar["bar_style"]) == (300, 300, "success")
        assert text.startswith("epoch 300/300 "), text  # the widget's final text
        assert len(re.findall(r"\bloss=", text)) == 1 and "accuracy=" in text, text
    else:
        assert mime_types(outputs) == {"text/plain"}, outputs
        assert not executed.widgets, executed.widgets


def test_an_early_stop_ends_at_its_last_epoch_and_is_no_failure(executed):
    (output,) = executed.outputs["early"]
    text = output["data"]["text/plain"]
    n = int(re.match(r"epoch (\d+)/300 \(", text).group(1))
    assert 1 <= n < 300, text
    if executed.kernel == "ipywidgets":  # tqdm would paint a short bar red
        bar, text = executed.bar("early")
        assert (bar["value"], bar["max"], bar["bar_style"]) == (n, 300, "success")
        assert text.startswith(f"epoch {n}/300 "), text


def test_a_slow_fit_updates_its_one_display_a_bounded_number_of_times(executed):
    """~2 s of training: the display changes on the way (it is live), but far
    fewer times than the 300 epochs (it is throttled), and never by new
    outputs."""
    messages = executed.messages["fit_slow"]
    shown = messages["display_data"] + messages["stream"]
    assert shown == 1, messages
    if executed.kernel == "ipywidgets":
        assert messages["update_display_data"] == 1, messages  # the final text
        assert 6 <= messages["comm_msg"] <= 150, messages  # a redraw: ~3 messages
    else:
        assert 3 <= messages["update_display_data"] <= 12, messages  # 2 a second


def test_verbose_2_prints_at_most_30_lines_for_300_epochs(executed):
    lines = text_of(executed.outputs["fit_2"]).strip().split("\n")
    assert 2 <= len(lines) <= 30, lines
    assert lines[-1].startswith("epoch 300/300")


@pytest.mark.parametrize("cell", ["summary", "explain", "flow", "gradcheck"])
def test_every_report_renders_as_html(executed, cell):
    outputs = executed.outputs[cell]
    assert "text/html" in mime_types(outputs), outputs
    html = "".join(o["data"]["text/html"] for o in outputs if "data" in o)
    assert "<table>" in html


def test_import_glassnet_loads_no_notebook_machinery():
    code = (
        "import sys, glassnet as gn\n"
        "heavy = ['tqdm', 'ipywidgets', 'IPython', 'ipykernel']\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


class ZMQInteractiveShell:  # named as ipykernel's shell; Colab's Shell derives it
    pass


class Shell(ZMQInteractiveShell):
    pass


class TerminalInteractiveShell:
    pass


@pytest.mark.parametrize(
    "shell, expected",
    [
        (ZMQInteractiveShell(), True),  # Jupyter, VS Code
        (Shell(), True),  # a shell built on ipykernel's (Colab)
        (TerminalInteractiveShell(), False),  # IPython in a terminal: tqdm's bar
        (None, False),  # IPython imported, no shell running
    ],
)
def test_in_notebook_means_a_shell_built_on_ipykernels(monkeypatch, shell, expected):
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: shell
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    assert _notebook.in_notebook() is expected


def test_in_notebook_is_false_without_ipython_and_does_not_import_it(monkeypatch):
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert _notebook.in_notebook() is False
    assert "IPython" not in sys.modules
