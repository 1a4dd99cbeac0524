import numpy as np
import pytest


@pytest.fixture
def rng():
    """One seeded generator per test; no global np.random.seed anywhere."""
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    """Reports fit COLUMNS (else the terminal, else 80 columns). Tests that look
    for a whole formula or sentence in a report read it at 250 columns, where
    nothing wraps; the width tests (test_terminal_width.py) set their own."""
    monkeypatch.setenv("COLUMNS", "250")
