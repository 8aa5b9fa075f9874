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


def check_folder_path(path: str | os.PathLike, what: str = "") -> Path:
    """(`what`, e.g. "--out ", starts the message.) `path` can be (or already is) a folder: it is not a file, and no part of it is a file. Raises
    OutputPathError naming the part in the way, before any work is done."""
    from .errors import OutputPathError

    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{what}{str(path)!r} is a file, not a folder: name a folder (a new one is made)")
    _check_parents(path, what)
    return path


def check_file_path(path: str | os.PathLike, what: str = "") -> Path:
    """`path` can be written as a file: it is not a folder, and no part of the folders above it is a file."""
    from .errors import OutputPathError

    path = Path(path).expanduser()
    if path.is_dir():
        raise OutputPathError(f"{what}{str(path)!r} is a folder: name the file to write, e.g. "
                              f"{str(path / 'model.onnx')!r}")
    _check_parents(path, what)
    return path


def _check_parents(path: Path, what: str) -> None:
    from .errors import OutputPathError

    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputPathError(f"{what}{str(path)!r}: {str(parent)!r} is a file, not a folder: choose a "
                                      f"path whose folders are folders")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise OutputPathError(f"{what}{str(path)!r}: cannot write in {str(parent)!r} (permission "
                                      f"denied): choose a folder you may write to")
            return


def atomic_write_with(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """For writers that want a path (torch.onnx.export, matplotlib's savefig, torch.jit.save): `write(temp)` writes
    a temp file in the same folder, which is then synced and renamed over `path`. A writer that fails leaves an
    existing `path` as it was and no temp file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_current_umask())
        write(Path(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_json(path: str | os.PathLike, fix: str = "restore it from a copy, or start anew") -> object:
    """The JSON in `path`; a file that is not JSON raises CorruptFileError naming the file, where it breaks and
    `fix`."""
    import json

    from .errors import CorruptFileError

    path = Path(path)
    text = path.read_bytes()
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorruptFileError(f"{str(path)!r} is not valid JSON ({err}): it is corrupt or was edited; "
                               f"{fix}") from err
