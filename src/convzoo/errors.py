"""The errors convzoo raises. Each is a ValueError/FileNotFoundError subclass whose message says what is
wrong and what to do about it, so callers can catch the standard types."""


class ConvzooError(Exception):
    """Base of every convzoo error."""


class UnknownModelError(ConvzooError, ValueError):
    """A model name that is not registered."""


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
    """An image file that cannot be decoded; `path` names it."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        super().__init__(f"cannot read image {path!r}: {reason}. Fix or remove the file, or skip unreadable "
                         f"images with skip_bad=True (--skip-bad).")


class RunFolderError(ConvzooError, ValueError):
    """A run folder that cannot be used as asked: nothing to resume, already holds a run, unreadable state."""


class TrainingDivergedError(ConvzooError, FloatingPointError):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint."""


class SpecError(ConvzooError, ValueError):
    """A NAS architecture spec that is not valid; the message names the field (e.g. `layers[3].filter_height`)
    and what it may hold."""


class SpecFileNotFoundError(SpecError, FileNotFoundError):
    """A NAS spec path that does not exist."""


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
