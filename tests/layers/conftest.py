import pytest


@pytest.fixture(autouse=True, scope="module")
def _layers_use_one_thread(one_thread):
    yield
