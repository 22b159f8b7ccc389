import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    # The guide's small networks on a shared 2-core machine: a second intra-op thread only adds contention.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
