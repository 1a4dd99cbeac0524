"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every file glassnet writes (models, checkpoints, history CSV, plots) goes through
`atomic_open` or `atomic_write`: the bytes go to a temporary file in the target's
directory, are flushed and fsync'ed, and only then does os.replace swap the
temporary file in (an atomic rename on POSIX and Windows). A process killed at
any point leaves the previous file intact, plus at worst a stray ".tmp" file.
"""

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import IO


def _new_file_mode() -> int:
    """The permissions open() would give a new file (0o666 minus the umask)."""
    umask = os.umask(0)  # the only portable way to read the umask is to set it
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike, mode: str = "wb", *, encoding: str | None = None
) -> Iterator[IO]:
    """Open a temporary file beside `path`; on a clean exit, replace `path` by it.

        with atomic_open("history.csv", "w", encoding="utf-8") as fh:
            fh.write(text)

    mode is "wb" or "w". If the block raises (KeyboardInterrupt included), the
    temporary file is removed and `path` is left as it was.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open: mode must be 'wb' or 'w', got {mode!r}")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory
    )
    try:
        newline = "" if mode == "w" else None  # write exactly the "\n" we are given
        with os.fdopen(fd, mode, encoding=encoding, newline=newline) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())  # the data is on disk before the name points at it
        try:  # mkstemp makes the file private (0o600); keep the usual permissions
            mode_bits = os.stat(path).st_mode & 0o777
        except FileNotFoundError:
            mode_bits = _new_file_mode()
        os.chmod(tmp, mode_bits)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable (POSIX); harmless where unsupported."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Write bytes (or UTF-8 text) to `path` atomically; see atomic_open."""
    if isinstance(data, str):
        with atomic_open(path, "w", encoding="utf-8") as fh:
            fh.write(data)
    else:
        with atomic_open(path, "wb") as fh:
            fh.write(data)
