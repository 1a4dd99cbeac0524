"""The exceptions glassnet raises on bad input.

Every error subclasses both GlassnetError (catch everything from glassnet) and the
built-in type a Python user expects (ValueError, TypeError or RuntimeError), and its
message names the layer, argument or file, what was expected and what was received.
"""


class GlassnetError(Exception):
    """Base class of every error glassnet raises on purpose."""


class ShapeError(GlassnetError, ValueError):
    """An array has the wrong number of dimensions or the wrong size."""


class DataError(GlassnetError, ValueError):
    """Data values are unusable: NaN or inf, labels out of range, lengths differ."""


class ConfigError(GlassnetError, ValueError):
    """A constructor or fit argument is invalid: unknown name, size <= 0, lr <= 0."""


class ArgumentTypeError(GlassnetError, TypeError):
    """An argument has the wrong kind (a string where a layer was expected, ...)."""


class CallOrderError(GlassnetError, RuntimeError):
    """Methods were called in the wrong order (backward before forward)."""


class MissingDependencyError(GlassnetError, ImportError):
    """An optional package a feature needs is not installed; the message says
    which extra to install (pip install 'glassnet[sklearn]', ...)."""


class TrainingDivergedError(GlassnetError, RuntimeError):
    """The loss became NaN or inf; the weights were restored to their last finite
    values before this was raised."""


class ModelFileError(GlassnetError, ValueError):
    """A model or checkpoint file cannot be used: missing pieces, truncated, corrupt,
    crafted, from an unknown format version, or not matching its architecture.

    The message starts with the file's path. glassnet raises it before using any
    byte of a file it has not validated; nothing named in a file is imported or
    executed, and nothing is allocated from sizes the file declares.
    """

    def __init__(self, path, reason: str) -> None:
        self.path, self.reason = str(path), reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # keep the two-argument constructor when copied
        return (type(self), (self.path, self.reason))
