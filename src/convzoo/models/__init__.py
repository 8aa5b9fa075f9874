"""Model families; importing this package registers every network."""
from . import classification  # noqa: F401
from . import segmentation  # noqa: F401
