import numpy as np
import pytest


@pytest.fixture
def rng():
    """One seeded generator per test; no global np.random.seed anywhere."""
    return np.random.default_rng(0)


@pytest.fixture
def wide_terminal(monkeypatch):
    """Reports fit COLUMNS (else the terminal, else 80 columns). Tests that look
    for a whole formula or row in a report read it at 250 columns, where nothing
    wraps (pytestmark = pytest.mark.usefixtures("wide_terminal")); the width
    tests (test_terminal_width.py) set their own."""
    monkeypatch.setenv("COLUMNS", "250")
