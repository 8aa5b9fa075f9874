"""Neural architecture search (Zoph & Le 2016): architecture specs, the search space, and the searches.

    from convzoo.nas import SearchSpace, load_spec, spec_key
    spec = load_spec("runs/search/best.json")        # a spec file, a search folder or a nas training run
    model = convzoo.create_model("nas", spec=spec, num_classes=10)

    from convzoo.nas import SearchConfig, search
    result = search(SearchConfig(method="reinforce", budget=64, epochs=3, workers=2), "runs/nas")
    search(SearchConfig(budget=64, workers=8, executor="ray", address="auto", gpus_per_child=1), "runs/nas-ray")
"""
from .config import SearchConfig, SearchResult
from .controller import Controller, ControllerSample, ReinforceUpdater, reinforce_loss
from .enas import EnasSettings, SharedNetwork, run_enas
from .executor import Executor, ProcessExecutor, RayExecutor, SerialExecutor, make_executor
from .folder import SearchFolder
from .search import search
from .space import SearchSpace
from .spec import (
    EXAMPLE_SPEC,
    SPEC_FORMAT,
    SPEC_VERSION,
    NASNetwork,
    SpecError,
    SpecFileNotFoundError,
    load_spec,
    save_spec,
    spec_key,
    spec_min_input_size,
    validate_spec,
)

__all__ = ["EXAMPLE_SPEC", "SPEC_FORMAT", "SPEC_VERSION", "Controller", "ControllerSample", "EnasSettings", "Executor", "NASNetwork",
           "ProcessExecutor", "RayExecutor", "ReinforceUpdater", "SearchConfig", "SearchFolder", "SearchResult",
           "SearchSpace", "SerialExecutor", "SharedNetwork", "SpecError", "SpecFileNotFoundError", "load_spec", "make_executor",
           "reinforce_loss", "run_enas", "save_spec", "search", "spec_key", "spec_min_input_size", "validate_spec"]
