"""A notebook executed in a real Jupyter kernel (nbclient): plots show as PNG
images without magics, progress is one updating output (never a line per
epoch), verbose=2 stays short, and every report has an HTML view."""

import os

import ipykernel  # noqa: F401  the kernel; nbclient, nbformat, ipykernel and
import nbclient  # matplotlib come with the [test] extra
import nbformat
import pytest

SETUP = """\
import glassnet as gn
X, y = gn.datasets.load_iris()
X = (X - X.mean(axis=0)) / X.std(axis=0)
model = gn.Sequential(gn.Dense(4, 5), gn.Tanh(), gn.Dense(5, 3), seed=0)
"""

CELLS = {  # name -> source; each cell's outputs are checked below
    "setup": SETUP,
    "fit_auto": "history = model.fit(X, y, epochs=300, validation_split=0.2)",
    "fit_1": "history = model.fit(X, y, epochs=300, verbose=1)",
    "fit_2": "history = model.fit(X, y, epochs=300, verbose=2)",
    "plot": "gn.plot.history(history)",
    "plot_filters": "gn.plot.filters(gn.Conv2D(1, 4, 3))",
    "summary": "model.summary((4,))",
    "explain": "gn.explain(model, (4,), loss='softmax_cross_entropy')",
    "flow": "gn.gradient_flow(model, X, y, loss='softmax_cross_entropy')",
    "gradcheck": "gn.gradcheck(model, X[:5], y[:5], loss='softmax_cross_entropy')",
}


@pytest.fixture(scope="module")
def executed():
    """{cell name: its outputs}, from one kernel that ran every cell in order."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in CELLS.values()]
    import glassnet  # the kernel imports this copy of glassnet, not another

    src = os.path.dirname(os.path.dirname(glassnet.__file__))
    path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (src, path) if p)
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3")
    try:
        client.execute()
    finally:
        if path is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = path
    return {name: cell.outputs for name, cell in zip(CELLS, nb.cells, strict=True)}


def test_the_kernel_ran_every_cell_without_error(executed):
    errors = [o for outs in executed.values() for o in outs if o.output_type == "error"]
    assert not errors, errors


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
    assert "image/png" in mime_types(executed[cell]), executed[cell]


@pytest.mark.parametrize("cell", ["fit_auto", "fit_1"])
def test_progress_is_one_updating_output_that_ends_at_the_last_epoch(executed, cell):
    outputs = executed[cell]
    assert 1 <= len(outputs) <= 2, outputs  # shown, and bounded
    text = text_of(outputs)
    assert "epoch 300/300" in text or "application/vnd.jupyter.widget-view+json" in (
        mime_types(outputs)
    ), outputs
    assert text.count("epoch ") <= 2


def test_verbose_2_prints_at_most_30_lines_for_300_epochs(executed):
    lines = text_of(executed["fit_2"]).strip().split("\n")
    assert 2 <= len(lines) <= 30, lines
    assert lines[-1].startswith("epoch 300/300")


@pytest.mark.parametrize("cell", ["summary", "explain", "flow", "gradcheck"])
def test_every_report_renders_as_html(executed, cell):
    outputs = executed[cell]
    assert "text/html" in mime_types(outputs), outputs
    html = "".join(o["data"]["text/html"] for o in outputs if "data" in o)
    assert "<table>" in html
