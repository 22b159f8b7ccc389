import pytest


@pytest.fixture(autouse=True, scope="module")
def _training_uses_one_thread(one_thread):
    yield
