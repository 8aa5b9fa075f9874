import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _own_speed_cache(monkeypatch, tmp_path_factory):
    # The engine caches its channels_last/bf16 choice per machine (training/speed.py): each test starts without
    # one, and never writes the user's ~/.cache.
    monkeypatch.setenv("CONVZOO_CACHE", str(tmp_path_factory.mktemp("convzoo-cache")))
