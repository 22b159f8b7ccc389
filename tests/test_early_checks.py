"""Mistakes found at construction or at ``>``, before any run writes anything (issue 27, items 3 and 10):
class_weights of the wrong length, optimizer options torch refuses only at its first step, a CUDA device this
machine lacks."""

import numpy as np
import pytest
import torch

import mariana.costs as MC
import mariana.layers as ML
import mariana.scenari as MS


def test_class_weights_of_the_wrong_length_are_refused_at_connection_naming_the_layer_and_both_lengths():
    out = ML.SoftmaxClassifier(3, cost=MC.NegativeLogLikelihood(class_weights=[1.0, 2.0]), name="out")
    inp = ML.Input(4, name="inp")
    with pytest.raises(ValueError, match=r"SoftmaxClassifier 'out' has 3 classes, so NegativeLogLikelihood expected 3 "
                                         r"class_weights \(one per class\), but received 2: \[1.0, 2.0\]"):
        inp > out
    assert out.shape is None and not dict(out.named_parameters())  # the refused `>` left nothing behind
    out.cost = MC.NegativeLogLikelihood(class_weights=[1.0, 2.0, 3.0])
    net = inp > out
    assert net.propagate("out", inp=np.zeros((2, 4), dtype=np.float32)).shape == (2, 3)


def test_a_cost_assigned_after_connection_is_checked_at_assignment_and_the_old_one_kept():
    net = ML.Input(4, name="inp") > ML.SoftmaxClassifier(3, name="out")
    with pytest.raises(ValueError, match=r"'out' has 3 classes, so CategoricalCrossEntropy expected 3 class_weights.*received 4"):
        net["out"].cost = MC.CategoricalCrossEntropy(class_weights=[1, 1, 1, 1])
    assert net["out"].cost.class_weights is None
    net["out"].cost = MC.CategoricalCrossEntropy(class_weights=[1, 1, 2])
    assert net["out"].cost.class_weights == (1.0, 1.0, 2.0)
    with pytest.raises(TypeError, match="cost expects a mariana.costs object"):
        net["out"].cost = "mse"


def test_costs_without_class_weights_fit_any_output_size():
    net = ML.Input(4, name="inp") > ML.Regression(2, cost=MC.Huber(), name="out")
    net["out"].cost = MC.MeanSquaredError()
    assert ML.SoftmaxClassifier(5, cost=MC.NegativeLogLikelihood(), name="c").cost.class_weights is None


@pytest.mark.parametrize(("make", "message"), [
    (lambda: MS.Adam(eps=-1), r"Adam: eps must be a number >= 0, but received -1\."),
    (lambda: MS.Adam(weight_decay=-0.5), r"Adam: weight_decay must be a number >= 0, but received -0.5\."),
    (lambda: MS.AdamW(weight_decay=-1), r"AdamW: weight_decay must be a number >= 0, but received -1\."),
    (lambda: MS.AdamW(beta2=1.0), r"AdamW: beta2 must be a number in \[0, 1\), but received 1.0\."),
    (lambda: MS.Adam(beta1=-0.1), r"Adam: beta1 must be a number in \[0, 1\), but received -0.1\."),
    (lambda: MS.Adam(lr=0), r"Adam: lr must be a number > 0, but received 0\."),
    (lambda: MS.RMSProp(alpha=-1), r"RMSProp: alpha must be a number in \[0, 1\], but received -1\."),
    (lambda: MS.RMSProp(eps=-1e-8), r"RMSProp: eps must be a number >= 0, but received -1e-08\."),
    (lambda: MS.RMSProp(momentum=-0.9), r"RMSProp: momentum must be a number >= 0, but received -0.9\."),
    (lambda: MS.RMSProp(lr=-0.01), r"RMSProp: lr must be a number > 0, but received -0.01\."),
    (lambda: MS.GradientDescent(0.1, momentum=-0.5), r"GradientDescent: momentum must be a number in \[0, 1\), but received -0.5\."),
    (lambda: MS.GradientDescent(float("nan")), r"GradientDescent: lr must be a number > 0, but received nan\."),
    (lambda: MS.Adam(eps="small"), r"Adam: eps must be a number >= 0, but received 'small'\."),
    (lambda: MS.Adam(eps=True), r"Adam: eps must be a number >= 0, but received True\."),
])
def test_optimizer_options_torch_would_refuse_at_the_first_step_are_refused_at_construction(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_the_refused_options_are_the_ones_torch_refuses_and_the_accepted_ones_build_a_torch_optimizer():
    param = [torch.nn.Parameter(torch.zeros(2))]
    for scenario in (MS.Adam(eps=0.0, weight_decay=0.0), MS.AdamW(beta1=0.0), MS.RMSProp(alpha=0.0, momentum=0.5),
                     MS.RMSProp(alpha=1.0), MS.GradientDescent(1e-3, momentum=0.0)):
        scenario.torch_class(param, **scenario.torch_options())
    with pytest.raises(ValueError):
        torch.optim.Adam(param, eps=-1.0)
    with pytest.raises(ValueError):
        torch.optim.RMSprop(param, alpha=-1.0)
    with pytest.raises(ValueError):
        torch.optim.AdamW(param, weight_decay=-1.0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", torch.device("cuda")])
def test_moving_a_network_to_cuda_without_cuda_is_a_clear_value_error(device):
    net = ML.Input(2, name="inp") > ML.Regression(1, name="out")
    with pytest.raises(ValueError, match=r"device='cuda(:0)?' needs CUDA, which this machine does not have .*available here: "
                                         r"'cpu'"):
        net.to(device)
    assert net.device == torch.device("cpu")
    assert net.to("cpu").to(torch.device("cpu")).device == torch.device("cpu")
    with pytest.raises(ValueError, match="device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', but received 'gpu'"):
        net.to("gpu")
