"""Writing files so that a crash never leaves a half-written one: temp file, fsync, rename."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically: a reader (or a run killed mid-write) sees the old file or the new
    one, never a mix. The temp file lives in the same folder so the final rename stays on one file system."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates the file private (0600); give it the permissions an ordinary open() would.
        os.fchmod(fd, 0o666 & ~_current_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # The rename itself lives in the directory entry: sync the folder so it survives a power cut.
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return path
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
    return path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def first_free_folder(base: str | os.PathLike, taken: Callable[[Path], bool]) -> Path:
    """`base`, or the first of base-2, base-3, ... that `taken` says is free (a run's or search's default
    folder: a new run never lands in an earlier one)."""
    candidate, number = Path(base), 1
    while taken(candidate):
        number += 1
        candidate = Path(base).with_name(f"{Path(base).name}-{number}")
    return candidate
