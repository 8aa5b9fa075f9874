"""The architecture spec: a plain, versioned JSON document (see models/classification/nas.py, where the spec
functions live beside the network they compile to, so that models need not import this package)."""
from ..errors import SpecError, SpecFileNotFoundError
from ..models.classification.nas import (
    EXAMPLE_SPEC,
    SPEC_FILE,
    SPEC_FORMAT,
    SPEC_VERSION,
    NASNetwork,
    load_spec,
    save_spec,
    spec_head_inputs,
    spec_key,
    spec_min_input_size,
    validate_spec,
)

__all__ = ["EXAMPLE_SPEC", "SPEC_FILE", "SPEC_FORMAT", "SPEC_VERSION", "NASNetwork", "SpecError",
           "SpecFileNotFoundError", "load_spec", "save_spec", "spec_head_inputs", "spec_key", "spec_min_input_size",
           "validate_spec"]
