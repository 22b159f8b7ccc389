"""Class weights, label smoothing and per-sample weights on costs, checked against torch.nn.functional."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mariana as mar
import mariana.costs as MC
import mariana.layers as ML
import mariana.scenari as MS
from mariana import registry

N_CLASSES = 4
WEIGHTS = [0.5, 2.0, 1.0, 3.0]
CLASSIFIERS = (MC.NegativeLogLikelihood, MC.CategoricalCrossEntropy)
TOLERANCE = dict(rtol=0, atol=1e-6)


def batch(seed=0, size=6):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(size, N_CLASSES, generator=generator) * 2
    ids = torch.randint(0, N_CLASSES, (size,), generator=generator)
    distributions = torch.softmax(torch.randn(size, N_CLASSES, generator=generator), dim=1)
    return logits, ids, distributions


def torch_reference(inputs, targets, weights, smoothing, logits):
    """What the issue promises: F.cross_entropy on logits, F.nll_loss / F.cross_entropy on log-probabilities."""
    weight = None if weights is None else torch.tensor(weights, dtype=inputs.dtype)
    if not logits:
        inputs = torch.log(inputs)
        if smoothing == 0 and not targets.is_floating_point():
            return F.nll_loss(inputs, targets, weight=weight)
    return F.cross_entropy(inputs, targets, weight=weight, label_smoothing=smoothing)


OPTION_CASES = [
    pytest.param(cls, weights, smoothing, kind, logits,
                 id=f"{cls.__name__}-{'weights' if weights else 'unweighted'}-ls{smoothing}-{kind}-{'logits' if logits else 'probs'}")
    for cls in CLASSIFIERS
    for weights in (None, WEIGHTS)
    for smoothing in (0.0, 0.2)
    for kind in (("ids", "distributions") if cls is MC.CategoricalCrossEntropy else ("ids",))
    for logits in (True, False)
]


@pytest.mark.parametrize("cls, weights, smoothing, kind, logits", OPTION_CASES)
def test_classifier_options_match_torch_in_value_and_gradient(cls, weights, smoothing, kind, logits):
    raw, ids, distributions = batch()
    targets = ids if kind == "ids" else distributions
    cost = cls(class_weights=weights, label_smoothing=smoothing)

    mine_in = raw.clone().requires_grad_()
    mine = cost.on_logits(mine_in, targets) if logits else cost(torch.softmax(mine_in, dim=1), targets)
    mine.backward()
    ref_in = raw.clone().requires_grad_()
    reference = torch_reference(ref_in if logits else torch.softmax(ref_in, dim=1), targets, weights, smoothing, logits)
    reference.backward()

    assert mine.dim() == 0
    torch.testing.assert_close(mine, reference, **TOLERANCE)
    torch.testing.assert_close(mine_in.grad, ref_in.grad, **TOLERANCE)


@pytest.mark.parametrize("logits", [True, False], ids=["logits", "probs"])
def test_class_weights_follow_the_inputs_dtype(logits):
    raw, ids, _ = batch(1)
    raw = raw.double()
    cost = MC.NegativeLogLikelihood(class_weights=WEIGHTS, label_smoothing=0.1)
    for inputs in (raw, raw.float(), raw):  # the cached weights are remade from the floats, never cast back and forth
        value = cost.on_logits(inputs, ids) if logits else cost(torch.softmax(inputs, dim=1), ids)
        reference = torch_reference(inputs if logits else torch.softmax(inputs, dim=1), ids, WEIGHTS, 0.1, logits)
        assert value.dtype == inputs.dtype
        torch.testing.assert_close(value, reference, **TOLERANCE)


# The formulas of mariana/costs.py before class weights, label smoothing and sample weights existed.
def original_nll(outputs, targets):
    return F.nll_loss(torch.log(outputs.clamp_min(1e-12)), targets)


def original_cce(outputs, targets):
    log_probs = torch.log(outputs.clamp_min(1e-12))
    if targets.is_floating_point():
        return -(targets * log_probs).sum(dim=-1).mean()
    return F.nll_loss(log_probs, targets)


def default_cases():
    raw, ids, distributions = batch(2)
    values = torch.rand(6, 3, generator=torch.Generator().manual_seed(3))
    guesses = torch.randn(6, 3, generator=torch.Generator().manual_seed(4))
    return [
        ("nll-probs", MC.NegativeLogLikelihood(), "call", torch.softmax, raw, ids, original_nll),
        ("nll-logits", MC.NegativeLogLikelihood(), "on_logits", None, raw, ids, F.cross_entropy),
        ("cce-ids-probs", MC.CategoricalCrossEntropy(), "call", torch.softmax, raw, ids, original_cce),
        ("cce-ids-logits", MC.CategoricalCrossEntropy(), "on_logits", None, raw, ids, F.cross_entropy),
        ("cce-distributions-probs", MC.CategoricalCrossEntropy(), "call", torch.softmax, raw, distributions, original_cce),
        ("cce-distributions-logits", MC.CategoricalCrossEntropy(), "on_logits", None, raw, distributions, F.cross_entropy),
        ("bce-probs", MC.BinaryCrossEntropy(), "call", torch.sigmoid, guesses, values,
         lambda o, t: F.binary_cross_entropy(o.clamp(1e-12, 1 - 1e-12), t)),
        ("bce-logits", MC.BinaryCrossEntropy(), "on_logits", None, guesses, values, F.binary_cross_entropy_with_logits),
        ("mse", MC.MeanSquaredError(), "call", None, guesses, values, F.mse_loss),
        ("mae", MC.MeanAbsoluteError(), "call", None, guesses, values, F.l1_loss),
        ("huber", MC.Huber(0.5), "call", None, guesses, values, lambda o, t: F.huber_loss(o, t, delta=0.5)),
    ]


@pytest.mark.parametrize("name, cost, method, activation, raw, targets, original", default_cases(),
                         ids=[case[0] for case in default_cases()])
def test_defaults_are_bit_identical_to_the_original_formulas(name, cost, method, activation, raw, targets, original):
    def run(function):
        inputs = raw.clone().requires_grad_()
        value = function(activation(inputs, dim=1) if activation is torch.softmax else
                         activation(inputs) if activation else inputs, targets)
        value.backward()
        return value, inputs.grad

    mine, mine_grad = run(cost if method == "call" else cost.on_logits)
    reference, reference_grad = run(original)
    assert torch.equal(mine, reference) and torch.equal(mine_grad, reference_grad)


def every_cost_case():
    raw, ids, distributions = batch(5)
    values = torch.rand(6, 3, generator=torch.Generator().manual_seed(6))
    guesses = torch.randn(6, 3, generator=torch.Generator().manual_seed(7))
    cases = []
    for cls in CLASSIFIERS:
        for weights in (None, WEIGHTS):
            for smoothing in (0.0, 0.2):
                kinds = [("ids", ids)] + ([("distributions", distributions)] if cls is MC.CategoricalCrossEntropy else [])
                for kind, targets in kinds:
                    cost = cls(class_weights=weights, label_smoothing=smoothing)
                    label = f"{cls.__name__}-{'weights' if weights else 'unweighted'}-ls{smoothing}-{kind}"
                    cases.append(pytest.param(cost, raw, targets, True, id=label + "-logits"))
                    cases.append(pytest.param(cost, torch.softmax(raw, dim=1), targets, False, id=label + "-probs"))
    cases.append(pytest.param(MC.BinaryCrossEntropy(), guesses, values, True, id="BinaryCrossEntropy-logits"))
    cases.append(pytest.param(MC.BinaryCrossEntropy(), torch.sigmoid(guesses), values, False, id="BinaryCrossEntropy-probs"))
    for cost in (MC.MeanSquaredError(), MC.MeanAbsoluteError(), MC.Huber(0.5)):
        cases.append(pytest.param(cost, guesses, values, False, id=type(cost).__name__))
    return cases


def unweighted(cost, inputs, targets, logits):
    return cost.on_logits(inputs, targets) if logits else cost(inputs, targets)


@pytest.mark.parametrize("cost, inputs, targets, logits", every_cost_case())
def test_sample_weights_of_one_give_the_unweighted_cost(cost, inputs, targets, logits):
    ones = torch.ones(inputs.shape[0])
    torch.testing.assert_close(cost.weighted(inputs, targets, ones, logits), unweighted(cost, inputs, targets, logits),
                               **TOLERANCE)


@pytest.mark.parametrize("cost, inputs, targets, logits", every_cost_case())
def test_sample_weights_scale_each_sample_and_keep_the_denominator(cost, inputs, targets, logits):
    weights = torch.tensor([0.0, 1.0, 2.5, 0.5, 1.0, 3.0])
    per_element = {
        MC.BinaryCrossEntropy: lambda: (F.binary_cross_entropy_with_logits(inputs, targets, reduction="none") if logits
                                        else F.binary_cross_entropy(inputs, targets, reduction="none")),
        MC.MeanSquaredError: lambda: F.mse_loss(inputs, targets, reduction="none"),
        MC.MeanAbsoluteError: lambda: F.l1_loss(inputs, targets, reduction="none"),
        MC.Huber: lambda: F.huber_loss(inputs, targets, reduction="none", delta=0.5),
    }
    if type(cost) in per_element:
        expected = (weights * per_element[type(cost)]().mean(dim=1)).sum() / len(weights)  # Keras' sum over batch size
    else:
        log_inputs = inputs if logits else torch.log(inputs)
        class_weight = None if cost.class_weights is None else torch.tensor(cost.class_weights)
        losses = F.cross_entropy(log_inputs, targets, weight=class_weight, label_smoothing=cost.label_smoothing,
                                 reduction="none")  # w[y_i] * l_i for ids
        counts = (torch.ones(len(weights)) if class_weight is None or targets.is_floating_point()
                  else class_weight[targets])
        expected = (weights * losses).sum() / counts.sum()
    torch.testing.assert_close(cost.weighted(inputs, targets, weights, logits=logits), expected, **TOLERANCE)


def test_sample_weights_pass_their_gradient_to_the_weighted_samples_only():
    raw, ids, _ = batch(8)
    inputs = raw.clone().requires_grad_()
    weights = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    MC.NegativeLogLikelihood(class_weights=WEIGHTS).weighted(inputs, ids, weights, logits=True).backward()
    assert torch.all(inputs.grad[1::2] == 0) and torch.all(inputs.grad[::2].abs().sum(dim=1) > 0)


def test_a_custom_cost_without_a_loss_method_says_what_to_implement():
    class Constant(MC.Cost):
        def __call__(self, outputs, targets):
            return outputs.sum() * 0

    with pytest.raises(NotImplementedError, match=r"Constant must implement loss\(inputs, targets"):
        Constant().weighted(torch.ones(2, 1), torch.ones(2, 1), torch.ones(2))
    with pytest.raises(NotImplementedError, match="MeanSquaredError has no logits form"):
        MC.MeanSquaredError().on_logits(torch.ones(2, 1), torch.ones(2, 1))


CONFIG_CASES = [
    MC.NegativeLogLikelihood(class_weights=WEIGHTS),
    MC.NegativeLogLikelihood(label_smoothing=0.1),
    MC.CategoricalCrossEntropy(class_weights=(1, 2, 0, 4), label_smoothing=0.25),
    MC.CategoricalCrossEntropy(class_weights=np.array(WEIGHTS, dtype=np.float32)),
    MC.NegativeLogLikelihood(class_weights=torch.tensor(WEIGHTS, dtype=torch.float64), label_smoothing=0),
]


@pytest.mark.parametrize("cost", CONFIG_CASES, ids=repr)
def test_options_round_trip_through_json_configs(cost):
    data = json.loads(json.dumps(registry.serialize(cost)))
    config = data["config"]
    assert set(config) == {"class_weights", "label_smoothing"}
    assert config["class_weights"] is None or all(type(w) is float for w in config["class_weights"])
    assert type(config["label_smoothing"]) is float
    rebuilt = registry.deserialize(data, MC.Cost)
    assert type(rebuilt) is type(cost) and rebuilt.get_config() == cost.get_config()
    raw, ids, _ = batch(9)
    assert torch.equal(rebuilt.on_logits(raw, ids), cost.on_logits(raw, ids))


def test_configs_without_options_still_load_with_the_defaults():
    cost = registry.deserialize({"class": "NegativeLogLikelihood", "config": {}}, MC.Cost)
    assert cost.get_config() == {"class_weights": None, "label_smoothing": 0.0}


def test_a_classifier_layer_config_keeps_its_cost_options():
    out = ML.SoftmaxClassifier(N_CLASSES, cost=MC.NegativeLogLikelihood(class_weights=WEIGHTS, label_smoothing=0.1),
                               name="out")
    rebuilt = registry.deserialize(json.loads(json.dumps(registry.serialize(out))))
    assert rebuilt.cost.get_config() == {"class_weights": WEIGHTS, "label_smoothing": 0.1}


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(class_weights=[1.0, -0.5]), ValueError, r"non-negative floats.*received \[1.0, -0.5\]"),
    (dict(class_weights=[1.0, float("nan")]), ValueError, "finite"),
    (dict(class_weights=[1.0, float("inf")]), ValueError, "finite"),
    (dict(class_weights=[0.0, 0.0]), ValueError, "not all 0"),
    (dict(class_weights=[]), ValueError, r"received \[\]"),
    (dict(class_weights="1,2"), TypeError, "sequence of non-negative floats.*received '1,2'"),
    (dict(class_weights=2.0), TypeError, "received 2.0"),
    (dict(class_weights=[1.0, "2"]), TypeError, "received"),
    (dict(class_weights=[True, False]), TypeError, "received"),
    (dict(class_weights=[[1.0, 2.0]]), TypeError, "received"),
    (dict(label_smoothing=1.0), ValueError, r"label_smoothing must be a float in \[0, 1\), but received 1.0"),
    (dict(label_smoothing=-0.1), ValueError, r"in \[0, 1\), but received -0.1"),
    (dict(label_smoothing=float("nan")), ValueError, r"in \[0, 1\), but received nan"),
    (dict(label_smoothing="0.1"), TypeError, r"in \[0, 1\), but received '0.1'"),
    (dict(label_smoothing=True), TypeError, r"in \[0, 1\), but received True"),
], ids=repr)
@pytest.mark.parametrize("cls", CLASSIFIERS, ids=lambda cls: cls.__name__)
def test_bad_options_are_refused_at_construction(cls, kwargs, error, message):
    with pytest.raises(error, match=f"^{cls.__name__}: .*{message}"):
        cls(**kwargs)


@pytest.mark.parametrize("logits", [True, False], ids=["logits", "probs"])
@pytest.mark.parametrize("cls", CLASSIFIERS, ids=lambda cls: cls.__name__)
def test_class_weights_of_the_wrong_length_are_refused_at_call_time(cls, logits):
    raw, ids, _ = batch(10)
    cost = cls(class_weights=[1.0, 2.0, 3.0])
    inputs = raw if logits else torch.softmax(raw, dim=1)
    expected = f"{cls.__name__}: class_weights has 3 entries, one per class, but the outputs have 4 classes"
    with pytest.raises(ValueError, match=expected):
        unweighted(cost, inputs, ids, logits)
    with pytest.raises(ValueError, match=expected):
        cost.weighted(inputs, ids, torch.ones(len(ids)), logits)


def test_sample_weights_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError, match=r"MeanSquaredError: expected sample_weights of shape \(2,\), one per sample, "
                                         r"but received shape \(2, 1\)"):
        MC.MeanSquaredError().weighted(torch.ones(2, 3), torch.zeros(2, 3), torch.ones(2, 1))


@pytest.mark.parametrize("cost_class, targets", [
    (MC.NegativeLogLikelihood, np.array([0, 3, 1, 1, 2])),
    (MC.CategoricalCrossEntropy, np.array([0, 3, 1, 1, 2])),
    (MC.CategoricalCrossEntropy, np.eye(N_CLASSES, dtype=np.float32)[[0, 3, 1, 1, 2]] * 0.8 + 0.05),
], ids=["nll-ids", "cce-ids", "cce-distributions"])
def test_a_training_step_with_options_matches_a_hand_written_torch_step(cost_class, targets):
    mar.seed(0)
    lr = 0.3
    out = ML.SoftmaxClassifier(N_CLASSES, cost=cost_class(class_weights=WEIGHTS, label_smoothing=0.15),
                               learning_scenari=[MS.GradientDescent(lr=lr)], name="out")
    net = ML.Input(3, name="inp") > out
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    weight, bias = out.W.detach().clone().requires_grad_(), out.b.detach().clone().requires_grad_()

    reference = F.cross_entropy(torch.from_numpy(x) @ weight.T + bias, torch.from_numpy(targets),
                                weight=torch.tensor(WEIGHTS), label_smoothing=0.15)
    reference.backward()
    with torch.no_grad():
        weight -= lr * weight.grad
        bias -= lr * bias.grad

    loss = net.train("out", inp=x, out=targets)["out"]
    torch.testing.assert_close(loss, reference.detach(), **TOLERANCE)
    torch.testing.assert_close(out.W.detach(), weight.detach(), **TOLERANCE)
    torch.testing.assert_close(out.b.detach(), bias.detach(), **TOLERANCE)


@pytest.mark.parametrize("cost_class", [MC.NegativeLogLikelihood, MC.CategoricalCrossEntropy])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_a_batch_of_zero_weighted_classes_costs_zero_instead_of_nan(cost_class, smoothing):
    cost = cost_class(class_weights=[0.0, 1.0, 2.0], label_smoothing=smoothing)
    logits = torch.randn(6, 3, generator=torch.Generator().manual_seed(0), requires_grad=True)
    mixed = torch.tensor([0, 1, 2, 0, 1, 2])
    torch.testing.assert_close(cost.on_logits(logits, mixed),
                               F.cross_entropy(logits, mixed, weight=torch.tensor([0.0, 1.0, 2.0]), label_smoothing=smoothing))
    only_ignored = cost.on_logits(logits, torch.zeros(6, dtype=torch.long))  # torch's weighted mean: 0/0 = NaN
    only_ignored.backward()
    assert float(only_ignored.detach()) == 0.0 and bool((logits.grad == 0).all())
