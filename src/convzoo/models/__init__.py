"""Model families; importing this package registers every network and the features_only extractor."""
from . import classification  # noqa: F401
from . import segmentation  # noqa: F401
from . import features  # noqa: F401
