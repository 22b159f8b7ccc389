import pytest

from tests.training import run_child


@pytest.fixture(autouse=True, scope="module")
def _training_uses_one_thread(one_thread):
    yield


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    run_child.save_data(path)
    return path


@pytest.fixture(scope="module")
def reference(data_file):
    """The uninterrupted run: final weights, optimizer state and history."""
    trainer = run_child.make_trainer()
    history = trainer.start(*run_child.data(data_file))
    return trainer.net.state_dict(), trainer.net.optimizer_state_dict(), history
