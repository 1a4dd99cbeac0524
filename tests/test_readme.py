"""Every ```python block of README.md runs, top to bottom, in one namespace."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks() -> list[tuple[int, str]]:
    text = README.read_text(encoding="utf-8")
    return [
        (text[: m.start()].count("\n") + 1, m.group(1)) for m in BLOCK.finditer(text)
    ]


def test_readme_has_python_examples():
    assert len(_blocks()) >= 10


@pytest.mark.slow
def test_every_readme_python_block_runs(tmp_path, monkeypatch):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)  # blocks that save files write here
    namespace: dict = {"__name__": "__readme__"}
    for line, code in _blocks():
        try:
            exec(compile(code, f"README.md:{line}", "exec"), namespace)
        except Exception as exc:  # name the block that broke
            raise AssertionError(
                f"README.md block at line {line} failed: {exc!r}"
            ) from exc


def test_readme_first_example_learns_iris():
    """The 15-line example is what a newcomer runs first: it must actually work."""
    line, code = _blocks()[0]
    namespace: dict = {"__name__": "__readme__"}
    exec(compile(code, f"README.md:{line}", "exec"), namespace)
    assert namespace["history"]["val_accuracy"][-1] >= 0.9
    assert namespace["report"].passed
    assert abs(namespace["proba"].sum(axis=1) - 1).max() < 1e-5
