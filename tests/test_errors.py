"""Bad input raises ValueError/TypeError naming the layer, the expected and the
received value, and changes nothing: no param, no optimizer state, no graph."""

import numpy as np
import pytest

import mariana as mar
import mariana.activations as MA
import mariana.initializations as MI
import mariana.layers as ML
import mariana.scenari as MS
from tests.helpers import assert_unchanged, frozen_state

X = np.zeros((4, 2), dtype=np.float32)
Y = np.array([0, 1, 1, 0])


@pytest.fixture
def net():
    mar.seed(0)
    network = ML.Input(2, name="inp") > ML.Hidden(3, activation=MA.ReLU(), name="hid") > ML.SoftmaxClassifier(
        2, learning_scenari=[MS.GradientDescent(lr=0.1, momentum=0.9)], name="out")
    network.train("out", inp=X, out=Y)  # so there is optimizer state to protect
    return network






@pytest.mark.parametrize("batch, message", [
    ({"out": Y}, r"Missing input 'inp'.*received \['out'\]"),
    ({"inp": X}, r"Missing targets for SoftmaxClassifier 'out'"),
    ({"inp": X, "out": Y, "bogus": 1}, r"Unexpected key 'bogus'.*inputs \['inp'\].*targets \['out'\]"),
    ({"inp": np.zeros((4, 3), np.float32), "out": Y}, r"Input 'inp' expected data of shape \(batch, 2\), but received shape \(4, 3\)"),
    ({"inp": np.zeros(4, np.float32), "out": Y}, r"Input 'inp' expected data of shape \(batch, 2\), but received shape \(4,\)"),
    ({"inp": X, "out": Y[:3]}, r"Batch size mismatch: Input 'inp' received 4 rows but the targets of SoftmaxClassifier 'out' have 3"),
    ({"inp": X, "out": np.zeros((4, 2))}, r"SoftmaxClassifier 'out' expected integer class ids of shape \(batch,\) .*float64 of shape \(4, 2\)"),
    ({"inp": X, "out": np.array([0, 1, 2, 0])}, r"SoftmaxClassifier 'out' has 2 classes, so ids must be in \[0, 1\], but received ids from 0 to 2"),
    ({"inp": np.array(["a", "b"]), "out": Y}, r"Input 'inp': expected numeric input data.*<U1"),
    ({"inp": X.astype(bool), "out": Y}, r"Input 'inp' expects torch.float32 data, but received torch.bool"),
])
@pytest.mark.parametrize("call", ["train", "test"])
def test_bad_batches_raise_and_change_nothing(net, batch, message, call):
    before = frozen_state(net)
    with pytest.raises(ValueError, match=message):
        getattr(net, call)("out", **batch)
    assert_unchanged(net, before)


def test_floats_into_an_integer_input_are_refused(net):
    ids = ML.Input(3, dtype="int64", name="ids") > ML.Embedding(5, 2, name="emb")
    with pytest.raises(ValueError, match=r"Input 'ids' expects integer data \(torch.int64\), but received torch.float32"):
        ids.propagate("emb", ids=np.zeros((2, 3), np.float32))


def test_embedding_ids_out_of_range_raise_before_any_kernel(net):
    ids = ML.Input(3, dtype="int64", name="ids") > ML.Embedding(5, 2, name="emb")
    with pytest.raises(ValueError, match=r"Embedding 'emb' has 5 entries.*\[0, 4\].*from 0 to 7"):
        ids.propagate("emb", ids=np.array([[0, 7, 1]]))


def test_unknown_output_and_non_output_names(net):
    with pytest.raises(KeyError, match=r"No layer named 'nope'.*\['inp', 'hid', 'out'\]"):
        net.train("nope", inp=X)
    with pytest.raises(ValueError, match=r"Hidden 'hid' is not an output layer.*\['out'\]"):
        net.train("hid", inp=X)
    with pytest.raises(TypeError, match="predict needs a classifier output"):
        (ML.Input(2, name="a") > ML.Regression(1, name="r")).predict("r", a=X)


def test_missing_scenario_names_the_layer_and_the_fix():
    network = ML.Input(2, name="inp") > ML.Hidden(3, name="hid") > ML.SoftmaxClassifier(2, name="out")
    with pytest.raises(ValueError, match=r"Hidden 'hid' has no optimizer.*\['out'\].*GradientDescent"):
        network.train("out", inp=X, out=Y)


# -- errors at '>' -------------------------------------------------------------------------

def graph_state(*layers):
    return [(layer.network, list(layer.incoming), list(layer.outgoing), layer.shape, sorted(layer.params)) for layer in layers]


def test_second_incoming_edge_into_a_one_input_layer():
    a, b, h = ML.Input(2, name="a"), ML.Input(2, name="b"), ML.Hidden(3, name="h")
    a > h
    before = graph_state(a, b, h)
    with pytest.raises(ValueError, match=r"Hidden 'h' takes 1 input\(s\) and already receives \['a'\]; cannot also connect Input 'b'"):
        b > h
    assert graph_state(a, b, h) == before


def test_cycle():
    h1, h2, h3 = ML.Hidden(2, name="h1"), ML.Hidden(2, name="h2"), ML.Hidden(2, name="h3")
    h1 > h2 > h3
    with pytest.raises(ValueError, match=r"Hidden 'h3' > Hidden 'h1' would create a cycle"):
        h3 > h1
    with pytest.raises(ValueError, match="to itself"):
        h1 > h1


def test_duplicate_name_across_merged_networks():
    i = ML.Input(2, name="same")
    h = ML.Hidden(3, name="hid")
    h > ML.Hidden(2, name="same")
    before = graph_state(i, h)
    with pytest.raises(ValueError, match=r"Duplicate layer name 'same'"):
        i > h
    assert graph_state(i, h) == before
    assert "same" in h.network and len(h.network) == 2


def test_shape_mismatch_in_a_merge_names_both_layers_and_shapes():
    a, b = ML.Input(2, name="a"), ML.Input(3, name="b")
    with pytest.raises(ValueError, match=r"M 'bad' cannot take input shape\(s\) \[\(2,\), \(3,\)\].*'a': \(2,\), 'b': \(3,\)"):
        ML.M(a + b, name="bad")
    with pytest.raises(ValueError, match=r"Concatenate 'cat' cannot take input shape\(s\) \[\(2, 2\), \(3,\)\]"):
        ML.Concatenate([ML.Input((2, 2), name="c"), ML.Input(3, name="d")], name="cat")
    assert len(a.network) == 1 and len(b.network) == 1


def test_float_input_into_an_embedding_raises_at_connection():
    i, emb = ML.Input(3, name="inp"), ML.Embedding(10, 2, name="emb")
    with pytest.raises(ValueError, match=r"Embedding 'emb' expects integer ids, but Input 'inp' produces torch.float32"):
        i > emb
    assert emb.incoming == [] and emb.shape is None


def test_integer_input_into_a_dense_layer_raises_at_connection():
    with pytest.raises(ValueError, match=r"Hidden 'hid' expects float inputs, but Input 'ids' produces torch.int64"):
        ML.Input(3, dtype="int64", name="ids") > ML.Hidden(2, name="hid")


@pytest.mark.parametrize("keyword, value, message", [
    ("initializations", [MI.SingleValue("c", 0.0)], r"initialization SingleValue targets unknown param 'c'; this layer's params are \['W', 'b'\]"),
    ("learning_scenari", [MS.Fixed("V")], r"Fixed names unknown param\(s\) \['V'\]; this layer's params are \['W', 'b'\]"),
])
def test_unknown_param_names_raise_at_connection_and_build_nothing(keyword, value, message):
    i, h = ML.Input(2, name="inp"), ML.Hidden(3, name="hid", **{keyword: value})
    with pytest.raises(ValueError, match=message):
        i > h
    assert h.params == {} and h.shape is None and h.incoming == [] and h.network is not i.network


def test_downstream_layers_are_left_untouched_when_one_fails_to_build():
    h = ML.Hidden(3, name="hid")
    bad = ML.Hidden(2, initializations=[MI.Normal("nope")], name="bad")
    h > bad
    with pytest.raises(ValueError, match="unknown param 'nope'"):
        ML.Input(4, name="inp") > h
    assert h.params == {} and bad.params == {} and h.shape is None


@pytest.mark.parametrize("make, error, message", [
    (lambda: ML.Hidden(0), ValueError, r"Hidden: size must be a positive int, but received 0"),
    (lambda: ML.Hidden(3, name="2bad"), ValueError, r"invalid name '2bad'"),
    (lambda: ML.Hidden(3, name="class"), ValueError, r"invalid name 'class'"),
    (lambda: ML.Input(3, name="batch_size"), ValueError, r"the name 'batch_size' is reserved: run calls take batch_size="),
    (lambda: ML.Hidden(3, activation="relu"), TypeError, r"activation expects a mariana.activations object, but received 'relu'"),
    (lambda: ML.Hidden(3, learning_scenari=[MS.Adam(), MS.GradientDescent(0.1)]), ValueError, r"at most one optimizer"),
    (lambda: ML.Input(3, activation=MA.ReLU()), TypeError, r"Input 'input_\d+' does not take activation="),
    (lambda: ML.Input(0), ValueError, r"expected a shape of positive ints"),
    (lambda: ML.Input(3, dtype="complex64"), ValueError, r"dtype must name a real torch dtype"),
    (lambda: ML.SoftmaxClassifier(2, cost="nll"), TypeError, r"cost expects a mariana.costs object"),
    (lambda: MS.GradientDescent(lr=-1), ValueError, r"lr must be a number > 0"),
    (lambda: MI.GlorotUniform(3), TypeError, r"first argument is the name of the parameter"),
])
def test_bad_construction_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_merges_and_networks_refuse_the_arrow():
    a, b = ML.Input(2, name="a"), ML.Input(2, name="b")
    merge = ML.M(a + b, name="m")
    with pytest.raises(TypeError, match=r"M 'm' connects the layers it references when it is constructed"):
        ML.Input(2, name="c") > merge
    net = a.network
    with pytest.raises(TypeError, match="'>' connects layers, not networks"):
        net > ML.Hidden(2)
    with pytest.raises(TypeError, match="right-hand side is a Network"):
        ML.Hidden(2) > net
    with pytest.raises(ValueError, match=r"Input 'b' is an Input and takes no incoming connection"):
        a > b


def test_a_decorator_or_initialization_that_cannot_apply_fails_at_the_arrow_naming_the_layer():
    import mariana.decorators as MD

    i = ML.Input(4, name="inp")
    with pytest.raises(ValueError, match=r"Hidden 'hid': Mask of shape \(2,\) cannot apply to an output of shape \(3,\)"):
        i > ML.Hidden(3, decorators=[MD.Mask([1.0, 0.0])], name="hid")
    with pytest.raises(ValueError, match=r"Hidden 'hid2': GlorotUniform\('b'\) needs a parameter with at least 2 axes"):
        i > ML.Hidden(3, initializations=[MI.GlorotUniform("b")], name="hid2")
    assert len(i.network) == 1


@pytest.mark.parametrize("batch_size", ["8", True, 0, 2.5])
def test_a_bad_batch_size_is_refused(net, batch_size):
    with pytest.raises(ValueError, match=r"batch_size must be a positive int or None, but received"):
        net.propagate("out", inp=X, batch_size=batch_size)
