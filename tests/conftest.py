import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread: small tensors on a shared 2-core machine, and the count the child processes use."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
