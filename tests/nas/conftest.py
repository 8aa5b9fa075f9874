import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    # Small convolutions and the controller's one-token steps: threads only add contention on 2 shared cores
    # (and the search's children run with one thread each anyway).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
