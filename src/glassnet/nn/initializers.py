"""Weight initialisers: Glorot (Xavier), He (Kaiming) and plain uniform.

Each takes the weight's fan-in and fan-out and returns an array of `shape`.
A layer names its own (Dense(..., init="he_normal")); Dense and Conv2D default
to Glorot, recommended for tanh and linear layers by Glorot & Bengio (2010); He
(He et al., 2015) suits ReLU and LeakyReLU; "uniform" is PyTorch's default.
Sequential.from_sizes picks one per layer from the activation that follows it.
"""

import numpy as np

from glassnet.errors import ConfigError


def glorot_uniform(rng, shape, fan_in: int, fan_out: int, dtype) -> np.ndarray:
    """U(-a, a) with a = sqrt(6 / (fan_in + fan_out)): keeps variance through tanh."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def glorot_normal(rng, shape, fan_in: int, fan_out: int, dtype) -> np.ndarray:
    """N(0, 2 / (fan_in + fan_out))."""
    std = np.sqrt(2.0 / (fan_in + fan_out))
    return rng.normal(0.0, std, size=shape).astype(dtype)


def he_normal(rng, shape, fan_in: int, fan_out: int, dtype) -> np.ndarray:
    """N(0, 2 / fan_in): keeps ReLU outputs at unit scale."""
    std = np.sqrt(2.0 / fan_in)
    return rng.normal(0.0, std, size=shape).astype(dtype)


def he_uniform(rng, shape, fan_in: int, fan_out: int, dtype) -> np.ndarray:
    """U(-a, a) with a = sqrt(6 / fan_in)."""
    limit = np.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def uniform(rng, shape, fan_in: int, fan_out: int, dtype) -> np.ndarray:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's default for Linear."""
    limit = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


INITIALIZERS = {
    "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "uniform": uniform,
}


def get_initializer(name: str):
    """Look up an initialiser by name; ConfigError lists the known names."""
    if name not in INITIALIZERS:
        known = ", ".join(sorted(INITIALIZERS))
        raise ConfigError(f"unknown initializer {name!r}; known initializers: {known}")
    return INITIALIZERS[name]


def generator_from_state(state: dict) -> np.random.Generator:
    """A new Generator whose bit generator is in `state` (a bit_generator.state
    dict): it draws the same numbers again as the generator the state came from."""
    bit_generator = getattr(np.random, state["bit_generator"])()
    bit_generator.state = state
    return np.random.Generator(bit_generator)
