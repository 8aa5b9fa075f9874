import random
import zlib

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed(request):
    """Every test draws the same random numbers whatever the order it runs in and whichever xdist worker runs it:
    torch, numpy and random are seeded from the test's own node id. The CPU thread count, which changes the
    order of floating-point sums (so the rounding a tolerance test sees), is put back as it was, because some
    tests and the engine's quick recipe set it."""
    seed = zlib.crc32(request.node.nodeid.encode())
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _own_speed_cache(monkeypatch, tmp_path_factory):
    # The engine caches its channels_last/bf16 choice per machine (training/speed.py): each test starts without
    # one, and never writes the user's ~/.cache.
    monkeypatch.setenv("CONVZOO_CACHE", str(tmp_path_factory.mktemp("convzoo-cache")))


@pytest.fixture
def one_thread():
    """One CPU thread for a test's real computation: on 2 cores, two threads per pytest-xdist worker stall each other
    (_seed puts the count back after the test)."""
    torch.set_num_threads(1)
