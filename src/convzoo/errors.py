"""The errors convzoo raises. Each is a ValueError/FileNotFoundError subclass whose message says what is
wrong and what to do about it, so callers can catch the standard types."""


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
