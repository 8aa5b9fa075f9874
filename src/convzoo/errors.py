"""The errors convzoo raises. Each is a ValueError/FileNotFoundError subclass whose message says what is
wrong and what to do about it, so callers can catch the standard types."""


import re

_CORRUPT_FIX = "Fix or remove the file, or skip unreadable images with skip_bad=True (--skip-bad)."
# CorruptImageError's own message (with the default fix), as found inside a DataLoader worker's traceback text.
_CORRUPT_MESSAGE = re.compile(r"cannot read image (['\"])(.*?)\1: (.*?)\. Fix or remove the file", re.DOTALL)


class ConvzooError(Exception):
    """Base of every convzoo error."""


class UnknownModelError(ConvzooError, ValueError):
    """A model name that is not registered."""


class ModelArgumentError(ConvzooError, ValueError):
    """An argument a network does not take (e.g. drop_path_rate on a network without residual paths)."""


class PretrainedWeightsError(ConvzooError, ValueError):
    """pretrained=True / weights=: no weights ship with convzoo; the message says how to load a local file."""


class InputSizeError(ConvzooError, ValueError):
    """An input a network cannot take: too small, wrong channel count, wrong rank."""


class WeightsError(ConvzooError, ValueError):
    """A weights file that is not a state dict, or does not fit the model."""


class WeightsFileNotFoundError(ConvzooError, FileNotFoundError):
    """A weights path that does not exist."""


class ModelArgumentError(ConvzooError, ValueError):
    """Arguments a network's builder does not take (a --model-arg it has no parameter for)."""


class ModelForwardError(ConvzooError, ValueError):
    """A model's forward failed while being analysed; the message names the module that was running."""


class DataError(ConvzooError, ValueError):
    """A data set that cannot be used as given: empty class folder, classes that do not match, bad split."""


class DataNotFoundError(ConvzooError, FileNotFoundError):
    """A data path that does not exist or holds no data set convzoo recognises."""


class CorruptImageError(DataError):
    """An image file that cannot be decoded; `path` names it, `reason` says what the decoder found.

    A DataLoader worker's error reaches the main process rebuilt from its text alone (torch calls the class
    with one message, the worker's traceback): given only that, the path and reason are read back from it."""

    def __init__(self, path: str, reason: str | None = None, fix: str = _CORRUPT_FIX) -> None:
        if reason is None:
            found = _CORRUPT_MESSAGE.search(path)
            path, reason = (found.group(2), found.group(3)) if found else ("<unknown file>", path.strip())
        self.path, self.reason = path, reason
        super().__init__(f"cannot read image {path!r}: {reason}. {fix}")


class RunFolderError(ConvzooError, ValueError):
    """A run folder that cannot be used as asked: nothing to resume, already holds a run, unreadable state."""


class TrainingDivergedError(ConvzooError, FloatingPointError):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint."""


class SpecError(ConvzooError, ValueError):
    """A NAS architecture spec that is not valid; the message names the field (e.g. `layers[3].filter_height`)
    and what it may hold."""


class SpecFileNotFoundError(SpecError, FileNotFoundError):
    """A NAS spec path that does not exist."""


class OutputPathError(ConvzooError, ValueError):
    """A path to write that cannot be used: a file where a folder is needed, a folder where a file is, a part of
    the path that is a file, a folder one may not write in."""


class DeviceError(ConvzooError, ValueError):
    """A device name PyTorch does not know, or a device this machine does not have."""


class ExportCheckError(ConvzooError, ValueError):
    """An exported file whose outputs do not match PyTorch's; nothing was written (an existing file is kept)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a command that saves its progress: the message names the folder and the command that
    continues it (`convzoo train --resume runs/lenet5-digits`)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


_OS_FIXES = {
    "FileNotFoundError": "check the path (it does not exist)",
    "IsADirectoryError": "name a file, not a folder",
    "NotADirectoryError": "a part of the path is a file, not a folder: choose another path",
    "FileExistsError": "something is already there: choose another path",
    "PermissionError": "choose a path you may read or write, or change its permissions",
}


def user_error_message(err: BaseException) -> str:
    """One line for an error a user caused: convzoo's own and ValueError messages as they are (they name the
    fix), an OSError as what happened to which path and what to do."""
    if isinstance(err, OSError) and not isinstance(err, ConvzooError):
        import errno

        what = err.strerror or str(err)
        path = f" {err.filename!r}" if err.filename is not None else ""
        if err.filename2 is not None:
            path += f" -> {err.filename2!r}"
        if err.errno == errno.ENOSPC:
            fix = "free some disk space or write somewhere else"
        else:
            fix = _OS_FIXES.get(type(err).__name__, "check the path and try again")
        return f"{what}:{path}: {fix}"
    text = str(err) or type(err).__name__
    return " ".join(text.split("\n")) if not isinstance(err, ConvzooError) else text


class CorruptFileError(ConvzooError, ValueError):
    """A file convzoo wrote that cannot be read back (truncated, edited, not JSON); the message names it."""


class MemoryEstimateError(ConvzooError, ValueError):
    """A command whose estimated peak memory exceeds what the machine (or its cgroup) has available. The message
    gives the estimate, the memory available and what fits; `fixes` lists (flag, value) pairs that fit, e.g.
    [("-b", "4"), ("--input-size", "181 181")], for a front end to rewrite the command."""

    def __init__(self, message: str, fixes: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.fixes = list(fixes or [])


class OutputExistsError(ConvzooError, ValueError):
    """A file to write exists already and the caller did not ask to replace it (`--force`, overwrite=True)."""


class DrawError(ConvzooError, ValueError):
    """A drawing that cannot be made as asked: an unknown format or direction, a bad depth."""
