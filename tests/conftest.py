import numpy as np
import pytest


@pytest.fixture
def rng():
    """One seeded generator per test; no global np.random.seed anywhere."""
    return np.random.default_rng(0)
