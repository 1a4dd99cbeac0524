"""Every ```python block in docs/*.md runs: per file, in order, in one namespace.

A tutorial is only as good as its code, so each document is executed the way a
reader would paste it, top to bottom, in a scratch directory.
"""

import contextlib
import io
import re
from pathlib import Path

import pytest

DOCS = sorted((Path(__file__).resolve().parent.parent / "docs").glob("*.md"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(path: Path) -> list[str]:
    return BLOCK.findall(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_code_blocks_run_in_order(path, tmp_path, monkeypatch):
    blocks = python_blocks(path)
    if not blocks:
        pytest.skip(f"{path.name} has no python code")
    monkeypatch.chdir(tmp_path)  # files a tutorial writes land in a scratch dir
    with contextlib.suppress(ImportError):  # no window, even if a doc plots
        import matplotlib

        matplotlib.use("Agg")
    namespace = {"__name__": f"docs_{path.stem}"}
    for i, code in enumerate(blocks, 1):
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(code, f"{path.name} (python block {i})", "exec"), namespace)


def test_the_block_pattern_finds_fenced_python_only():
    text = "intro\n```python\nx = 1\n```\n\n```text\nout\n```\n```python\ny = 2\n```\n"
    assert BLOCK.findall(text) == ["x = 1\n", "y = 2\n"]
