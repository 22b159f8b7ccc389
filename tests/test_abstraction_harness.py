"""Every abstraction round-trips through get_config/from_config and JSON."""

import json

import pytest

import mariana.activations as MA
import mariana.costs as MC
import mariana.decorators as MD
import mariana.initializations as MI
import mariana.regularizations as MR
import mariana.scenari as MS
from mariana import registry
from tests.abstraction_cases import ABSTRACTION_CASES

FAMILIES = (MA.Activation, MC.Cost, MS.LearningScenario, MS.Schedule, MR.Regularization, MD.Decorator, MI.Initialization)
BASES = {"Activation", "Cost", "LearningScenario", "OptimizerScenario", "Schedule", "Regularization", "Decorator", "Initialization"}


@pytest.mark.parametrize("abstraction", ABSTRACTION_CASES, ids=repr)
def test_config_round_trip_through_json(abstraction):
    data = json.loads(json.dumps(registry.serialize(abstraction)))
    rebuilt = registry.deserialize(data)
    assert type(rebuilt) is type(abstraction)
    assert rebuilt.get_config() == abstraction.get_config()


def test_every_registered_abstraction_has_a_case():
    covered = {type(case).__name__ for case in ABSTRACTION_CASES}
    registered = {
        name for name, cls in registry.classes().items()
        if issubclass(cls, FAMILIES) and cls.__module__.startswith("mariana.") and name not in BASES
    }
    assert registered - covered == set(), "add a line to tests/abstraction_cases.py for each new abstraction"


def test_unknown_class_name_is_refused_naming_it_and_close_matches():
    with pytest.raises(ValueError, match=r"Unknown class name 'os.system': no class of that name is registered\. Custom"):
        registry.deserialize({"class": "os.system", "config": {}})
    with pytest.raises(ValueError, match=r"Unknown class name 'ReLu'.*did you mean 'ReLU'"):
        registry.deserialize({"class": "ReLu", "config": {}})


def test_class_of_the_wrong_family_is_refused():
    with pytest.raises(ValueError, match="Activation was expected"):
        registry.deserialize({"class": "L2", "config": {"factor": 1.0}}, MA.Activation)
