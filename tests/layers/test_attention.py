"""MultiHeadAttention against torch.nn.MultiheadAttention: self, causal and cross attention."""

import numpy as np
import pytest
import torch

import mariana as mar
import mariana.layers as ML
import mariana.scenari as MS


def seq(*shape, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).normal(size=shape).astype(np.float32))


def reference_for(att, features, context):
    reference = torch.nn.MultiheadAttention(features, att.heads, batch_first=True, kdim=context, vdim=context)
    with torch.no_grad():
        if context == features:
            reference.in_proj_weight.copy_(torch.cat([att.W_q, att.W_k, att.W_v]))
        else:
            reference.q_proj_weight.copy_(att.W_q)
            reference.k_proj_weight.copy_(att.W_k)
            reference.v_proj_weight.copy_(att.W_v)
        reference.in_proj_bias.copy_(torch.cat([att.b_q, att.b_k, att.b_v]))
        reference.out_proj.weight.copy_(att.W_o)
        reference.out_proj.bias.copy_(att.b_o)
    return reference.eval()


@pytest.mark.parametrize("causal", [False, True])
def test_self_attention_matches_torch(causal):
    mar.seed(0)
    att = ML.MultiHeadAttention(4, causal=causal, name="att")
    net = ML.Input((7, 8), name="x") > att
    with torch.no_grad():
        for name in ("b_q", "b_k", "b_v", "b_o"):
            getattr(att, name).normal_()
    x = seq(3, 7, 8)
    mask = torch.triu(torch.ones(7, 7, dtype=torch.bool), 1) if causal else None
    expected = reference_for(att, 8, 8)(x, x, x, attn_mask=mask, need_weights=False)[0].detach()
    assert att.shape == (7, 8)
    torch.testing.assert_close(torch.from_numpy(net.propagate("att", x=x)), expected)


def test_causal_attention_ignores_the_future():
    mar.seed(0)
    net = ML.Input((5, 4), name="x") > ML.MultiHeadAttention(2, causal=True, name="att")
    x = seq(2, 5, 4)
    changed = x.clone()
    changed[:, 3:] = 100.0
    np.testing.assert_allclose(net.propagate("att", x=x)[:, :3], net.propagate("att", x=changed)[:, :3], rtol=1e-5, atol=1e-6)


def test_cross_attention_matches_torch_with_other_sizes():
    mar.seed(0)
    att = ML.MultiHeadAttention(2, cross=True, name="att")
    queries, context = ML.Input((4, 6), name="q"), ML.Input((9, 3), name="kv")
    net = queries > att
    assert att.shape is None  # waits for its keys/values
    net = context > att
    q, kv = seq(2, 4, 6), seq(2, 9, 3, seed=1)
    expected = reference_for(att, 6, 3)(q, kv, kv, need_weights=False)[0].detach()
    assert att.shape == (4, 6) and att.W_k.shape == (6, 3)
    torch.testing.assert_close(torch.from_numpy(net.propagate("att", q=q, kv=kv)), expected)


def test_attention_units_and_gradients():
    mar.seed(0)
    att = ML.MultiHeadAttention(3, units=12, name="att")
    net = ML.Input((5, 4), name="x") > att > ML.Flatten() > ML.Regression(1, learning_scenari=[MS.Adam(1e-2)], name="out")
    assert att.W_q.shape == (12, 4) and att.W_o.shape == (4, 12) and att.shape == (5, 4)
    x = seq(2, 5, 4).requires_grad_(True)
    values = net.forward("att", training=True, x=x)
    values["att"].pow(2).sum().backward()
    assert x.grad.abs().sum() > 0 and all(p.grad.abs().sum() > 0 for p in att.params.values())
    before = att.W_v.detach().clone()
    net.train("out", x=x.detach().numpy(), out=np.ones((2, 1), dtype=np.float32))
    assert not torch.equal(before, att.W_v)


@pytest.mark.parametrize("shape, layer, fragments", [
    ((5, 6), ML.MultiHeadAttention(4, name="att"), ["(5, 6)", "6 features", "4 heads"]),
    ((30,), ML.MultiHeadAttention(2, name="att"), ["(30,)", "(time, features)"]),
    ((2, 3, 4), ML.MultiHeadAttention(2, name="att"), ["(2, 3, 4)"]),
])
def test_attention_mistakes_raise_at_connection(shape, layer, fragments):
    with pytest.raises(ValueError) as info:
        ML.Input(shape, name="inp") > layer  # noqa: B015
    for fragment in ("inp", "att", *fragments):
        assert fragment in str(info.value), str(info.value)
    assert not layer.params and layer.shape is None


def test_cross_attention_context_of_wrong_rank_raises_and_changes_nothing():
    att = ML.MultiHeadAttention(2, cross=True, name="att")
    net = ML.Input((4, 6), name="q") > att
    with pytest.raises(ValueError, match=r"att.*keys/values.*\(12,\)"):
        ML.Input(12, name="kv") > att  # noqa: B015
    assert [p.name for p in att.incoming] == ["q"] and not att.params and list(net.layers) == ["q", "att"]
    with pytest.raises(ValueError, match="divisible"):
        ML.MultiHeadAttention(4, units=6)
    with pytest.raises(ValueError, match=r"already receives \['a'\]; a last input must be integer lengths"):
        ML.Input((4, 6), name="a") > ML.MultiHeadAttention(2, name="self_att") < ML.Input((4, 6), name="b")  # noqa: B015


def with_lengths(att, *inputs):
    for source in inputs:
        net = source > att
    return ML.Input(1, dtype="int64", name="lengths") > att if net else None


@pytest.mark.parametrize("causal", [False, True])
def test_self_attention_with_lengths_matches_torch_key_padding_and_ignores_padding(causal):
    mar.seed(0)
    att = ML.MultiHeadAttention(2, causal=causal, name="att")
    net = with_lengths(att, ML.Input((6, 4), name="x"))
    x, n = seq(3, 6, 4), torch.tensor([6, 2, 4])
    padding = torch.arange(6) >= n[:, None]
    mask = torch.triu(torch.ones(6, 6, dtype=torch.bool), 1) if causal else None
    expected = reference_for(att, 4, 4)(x, x, x, key_padding_mask=padding, attn_mask=mask, need_weights=False)[0].detach()
    expected = expected.masked_fill(padding[..., None], 0.0)
    out = torch.from_numpy(net.propagate("att", x=x, lengths=n[:, None]))
    torch.testing.assert_close(out, expected)
    garbage = x.masked_fill(padding[..., None], 1e3)
    np.testing.assert_array_equal(net.propagate("att", x=garbage, lengths=n[:, None]), out.numpy())


def test_cross_attention_lengths_mask_the_attended_sequence():
    mar.seed(0)
    att = ML.MultiHeadAttention(2, cross=True, name="att")
    net = with_lengths(att, ML.Input((3, 4), name="q"), ML.Input((5, 2), name="kv"))
    q, kv, n = seq(2, 3, 4), seq(2, 5, 2, seed=1), torch.tensor([[5], [1]])
    padding = torch.arange(5) >= n
    expected = reference_for(att, 4, 2)(q, kv, kv, key_padding_mask=padding, need_weights=False)[0].detach()
    torch.testing.assert_close(torch.from_numpy(net.propagate("att", q=q, kv=kv, lengths=n)), expected)
    with pytest.raises(ValueError, match=r"att.*\[1, 5\]"):
        net.propagate("att", q=q, kv=kv, lengths=[[0], [5]])
