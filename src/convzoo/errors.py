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
