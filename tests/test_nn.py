"""nn.Module bookkeeping, Linear, Embedding and nn.functional (losses and sequence helpers)."""

import numpy as np
import pytest
from devices import device_params, host
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_rnn as tg
from tinygrad_rnn import nn
from tinygrad_rnn.gradcheck import gradcheck
from tinygrad_rnn.nn import functional as F
from tinygrad_rnn.tensor import ShapeError
from tinygrad_rnn.testing import examples, floats, id_arrays, lengths

F64 = "float64"


class Block(nn.Module):
    def __init__(self, n_in, shared):
        self.proj = nn.Linear(n_in, 3)
        self.shared = shared


class Model(nn.Module):
    def __init__(self):
        self.embed = nn.Embedding(5, 2)
        shared = nn.Parameter(np.ones(3))
        self.blocks = [Block(2, shared), Block(3, shared)]
        self.pair = (nn.Linear(3, 1, bias=False), nn.Linear(1, 1))
        self.scale = shared
        self.not_a_param = tg.Tensor([1.0], requires_grad=True)  # plain tensors are not registered
        self.config = {"anything": 1}

    def forward(self, ids):
        h = self.embed(ids)
        for block in self.blocks:
            h = block.proj(h) * block.shared
        return self.pair[1](self.pair[0](h))


# ---- Module ---------------------------------------------------------------------------------------


def test_named_parameters_are_found_automatically_with_stable_dotted_names():
    model = Model()
    names = [n for n, _ in model.named_parameters()]
    assert names == [
        "embed.weight",
        "blocks.0.proj.W",
        "blocks.0.proj.b",
        "blocks.0.shared",
        "blocks.1.proj.W",
        "blocks.1.proj.b",
        "pair.0.W",
        "pair.1.W",
        "pair.1.b",
    ]
    assert len(model.parameters()) == 9, "a shared Parameter is listed once"
    assert [n for n, _ in model.named_modules()] == [
        "",
        "embed",
        "blocks.0",
        "blocks.0.proj",
        "blocks.1",
        "blocks.1.proj",
        "pair.0",
        "pair.1",
    ]
    assert names == [n for n, _ in Model().named_parameters()], "names must not depend on the instance"


def test_zero_grad_train_eval_and_repr():
    model = Model()
    model(np.array([[1, 2]])).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    assert model.eval() is model and not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    assert "(blocks.1): Block" in repr(model) and "Linear(2, 3, bias=True)" in repr(model)


@pytest.mark.parametrize("device", device_params())
def test_dropout_follows_train_and_eval(device):
    """Module.training is read: Dropout zeroes about p of the elements and scales the rest by
    1/(1−p) in training, and is the identity after eval(); its gradient uses the same mask."""
    drop = nn.Dropout(0.25, rng=np.random.default_rng(0))
    x = tg.Tensor(np.ones((200, 50)), device=device, requires_grad=True)
    y = drop(x)
    values = y.numpy()
    assert set(np.unique(values)) == {0.0, 4 / 3}
    assert abs((values == 0).mean() - 0.25) < 0.02
    y.sum().backward()
    np.testing.assert_array_equal(host(x.grad), values)  # ∂y/∂x is the scaled mask
    assert drop.eval()(x) is x
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        nn.Dropout(1.0)


@pytest.mark.parametrize("device", device_params())
def test_to_moves_parameters_in_place_and_keeps_them_the_same_objects(device):
    model = Model()
    before = {n: p.numpy() for n, p in model.named_parameters()}
    params = model.parameters()
    model(np.array([[0, 4]])).sum().backward()
    grads = [p.grad.copy() for p in params]
    assert model.to(device) is model and model.device == device
    assert all(a is b for a, b in zip(params, model.parameters())), "to() must keep the Parameter objects"
    for (name, p), g in zip(model.named_parameters(), grads):
        assert p.device == device
        np.testing.assert_array_equal(p.numpy(), before[name])
        np.testing.assert_array_equal(host(p.grad), g)
    out = model(tg.Tensor(np.array([[0, 4]]), device=device))
    assert out.device == device
    model.double()
    assert all(p.dtype == np.float64 and p.device == device for p in model.parameters())


def test_state_dict_round_trip_and_copies():
    a, b = Model(), Model()
    sd = a.state_dict()
    assert list(sd) == [n for n, _ in a.named_parameters()]
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    sd["embed.weight"][:] = 99.0  # a copy: changing it does not change the model
    assert not (a.embed.weight.numpy() == 99.0).any()
    b.load_state_dict(a.state_dict())
    ids = np.array([[1, 3, 4]])
    np.testing.assert_array_equal(b(ids).numpy(), a(ids).numpy())


def test_load_state_dict_lists_every_problem_and_leaves_the_model_untouched():
    model = Model()
    before = model.state_dict()
    sd = Model().state_dict()
    del sd["pair.1.b"]
    sd["blocks.0.proj.W"] = np.zeros((3, 3))
    sd["extra.W"] = np.zeros(2)
    with pytest.raises(nn.StateDictError) as e:
        model.load_state_dict(sd)
    message = str(e.value)
    assert "missing keys: pair.1.b" in message
    assert "unexpected keys: extra.W" in message
    assert "blocks.0.proj.W: shape (3, 3) in the state dict, (2, 3) in the model" in message
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=f"{k} changed by a failed load")

    with pytest.raises(nn.StateDictError, match="blocks.0.proj.W: shape"):
        model.load_state_dict(sd, strict=False)  # shapes are checked even when not strict
    sd["blocks.0.proj.W"] = np.zeros((2, 3))
    result = model.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["pair.1.b"] and result.unexpected_keys == ["extra.W"]
    np.testing.assert_array_equal(model.blocks[0].proj.W.numpy(), 0.0)


# ---- Linear -----------------------------------------------------------------------------------------


@settings(max_examples=examples(15))
@given(
    batch_shape=st.sampled_from([(), (3,), (2, 4)]),
    n_in=st.integers(1, 5),
    n_out=st.integers(1, 5),
    bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_linear_is_x_W_plus_b_and_passes_gradcheck(batch_shape, n_in, n_out, bias, seed):
    rng = np.random.default_rng(seed)
    layer = nn.Linear(n_in, n_out, bias=bias, dtype=F64, rng=rng)
    assert layer.W.shape == (n_in, n_out)
    x = tg.Tensor(rng.normal(size=batch_shape + (n_in,)), requires_grad=True)
    want = x.numpy() @ layer.W.numpy() + (layer.b.numpy() if bias else 0)
    np.testing.assert_allclose(layer(x).numpy(), want, rtol=1e-13)
    assert gradcheck(lambda x, *p: layer(x), [x, *layer.parameters()], seed=seed)


def test_linear_shape_error_names_both_shapes():
    with pytest.raises(
        ShapeError, match=r"Linear\(3, 2\): input of shape \(4, 5\) .* \(W has shape \(3, 2\)\)"
    ):
        nn.Linear(3, 2)(tg.randn(4, 5))


# ---- Embedding ---------------------------------------------------------------------------------------


@settings(max_examples=examples(15))
@given(data=st.data(), num=st.integers(1, 6), dim=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_embedding_lookup_and_gradcheck_with_repeated_ids(data, num, dim, seed):
    ids = data.draw(id_arrays(num, repeated=True))
    emb = nn.Embedding(num, dim, dtype=F64, rng=np.random.default_rng(seed))
    np.testing.assert_array_equal(emb(ids).numpy(), emb.weight.numpy()[ids])
    assert gradcheck(lambda w: emb(ids), [emb.weight], seed=seed)
    # repeated ids add up: d(sum of out ⊙ u)/dweight[i] = Σ over positions holding i of u
    u = np.random.default_rng(seed).normal(size=ids.shape + (dim,))
    emb.weight.grad = None
    (emb(ids) * tg.Tensor(u)).sum().backward()
    want = np.zeros((num, dim))
    np.add.at(want, ids.reshape(-1), u.reshape(-1, dim))
    np.testing.assert_allclose(emb.weight.grad, want, rtol=1e-13)


@pytest.mark.parametrize("padding_idx", [0, 3, -1])
def test_embedding_padding_row_is_zero_and_gets_no_gradient(padding_idx):
    emb = nn.Embedding(4, 3, padding_idx=padding_idx, dtype=F64)
    pad = padding_idx % 4
    np.testing.assert_array_equal(emb.weight.numpy()[pad], 0.0)
    ids = np.array([[pad, 1, pad], [2, pad, 1]])
    u = np.random.default_rng(0).normal(size=(2, 3, 3))
    (emb(ids) * tg.Tensor(u)).sum().backward()
    want = np.zeros((4, 3))
    np.add.at(want, ids.reshape(-1), u.reshape(-1, 3))
    want[pad] = 0.0
    np.testing.assert_allclose(emb.weight.grad, want, rtol=1e-13)
    emb.weight.data = np.full((4, 3), 2.0)  # the lookup returns the row's value, whatever it is
    np.testing.assert_array_equal(emb(ids).numpy(), 2.0)


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("bad", [7, -1])
def test_embedding_out_of_range_id_names_id_and_size(device, bad):
    emb = nn.Embedding(7, 2, device=device)
    with pytest.raises(IndexError, match=rf"id {bad} is out of range for a table of 7 rows"):
        emb(tg.Tensor(np.array([[1, bad]]), device=device))
    with pytest.raises(ValueError, match="padding_idx 7 is out of range for 7"):
        nn.Embedding(7, 2, padding_idx=7)


# ---- functional ---------------------------------------------------------------------------------------


def reference_cross_entropy(logits, targets, ignore_index, reduction):
    logits = logits.reshape(-1, logits.shape[-1])
    flat = targets.reshape(-1)
    m = logits.max(axis=1, keepdims=True)
    logp = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
    keep = flat != ignore_index
    losses = np.where(keep, -logp[np.arange(len(flat)), np.where(keep, flat, 0)], 0.0)
    if reduction == "none":
        return losses.reshape(targets.shape)
    return losses.sum() if reduction == "sum" else losses.sum() / keep.sum()


@settings(max_examples=examples(20))
@given(
    data=st.data(),
    shape=st.sampled_from([(3,), (1,), (2, 4), (3, 1)]),
    classes=st.integers(1, 5),
    reduction=st.sampled_from(["mean", "sum", "none"]),
    ignore_index=st.sampled_from([-100, 0]),
    seed=st.integers(0, 2**16),
)
def test_cross_entropy_values_and_gradcheck_with_ignore_index(
    data, shape, classes, reduction, ignore_index, seed
):
    targets = data.draw(id_arrays(classes, shape=shape, repeated=False))
    if ignore_index == -100 and targets.size > 1:
        targets.reshape(-1)[-1] = -100  # some position ignored
    logits = tg.Tensor(data.draw(floats(shape + (classes,), -4, 4)), requires_grad=True)
    with np.errstate(invalid="ignore"):  # every position ignored: mean is 0/0 = nan, as in PyTorch
        want = reference_cross_entropy(logits.numpy(), targets, ignore_index, reduction)
        got = F.cross_entropy(logits, targets, ignore_index=ignore_index, reduction=reduction)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-15)
    if np.isfinite(want).all():
        assert gradcheck(lambda z: F.cross_entropy(z, targets, ignore_index, reduction), [logits], seed=seed)
    logits.grad = None
    F.cross_entropy(logits, targets, ignore_index, "sum").backward()
    ignored = (targets == ignore_index).reshape(shape)
    assert not logits.grad[ignored].any(), "ignored positions must get zero gradient"


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_an_ignored_row_leaves_the_others_unchanged(reduction):
    """One ignored row changes nothing for the other rows: their losses and gradients are those
    of the same rows without it, and the ignored row gets no gradient."""
    rng = np.random.default_rng(3)
    data, targets = rng.normal(size=(5, 3)), np.array([0, 2, 1, 2, 1])
    short = tg.Tensor(data[:4], requires_grad=True, dtype="float64")
    loss_short = F.cross_entropy(short, targets[:4], reduction=reduction)
    masked = tg.Tensor(data, requires_grad=True, dtype="float64")
    loss_masked = F.cross_entropy(masked, np.r_[targets[:4], -100], reduction=reduction)
    want = loss_masked.numpy()[:4] if reduction == "none" else loss_masked.numpy()
    np.testing.assert_allclose(loss_short.numpy(), want, rtol=1e-14)
    upstream = rng.normal(size=(4,)) if reduction == "none" else None
    loss_short.backward(upstream)
    loss_masked.backward(None if upstream is None else np.r_[upstream, 7.0])
    np.testing.assert_allclose(short.grad, masked.grad[:4], rtol=1e-13, atol=1e-16)
    assert not masked.grad[4].any(), "the ignored row gets no gradient"


@pytest.mark.parametrize("device", device_params())
def test_cross_entropy_is_stable_for_huge_logits_on_every_device(device):
    logits = tg.Tensor(np.array([[1e4, -1e4, 0.0], [5e3, 5e3, -1e4]]), requires_grad=True, device=device)
    loss = F.cross_entropy(logits, tg.Tensor(np.array([0, 1]), device=device))
    np.testing.assert_allclose(loss.item(), np.log(2) / 2, rtol=1e-12)
    loss.backward()
    np.testing.assert_allclose(host(logits.grad), [[0, 0, 0], [0.25, -0.25, 0]], atol=1e-12)


def test_cross_entropy_errors_and_all_ignored():
    logits = tg.randn(2, 3, 4)
    with pytest.raises(IndexError, match=r"target 4 is out of range for 4 classes"):
        F.cross_entropy(logits, np.array([[0, 1, 4], [0, 0, 0]]))
    with pytest.raises(IndexError, match=r"target -1 is out of range"):  # negative, not ignore_index
        F.cross_entropy(logits, np.array([[0, 1, -1], [0, 0, 0]]))
    with pytest.raises(IndexError, match=r"target 4 is out of range"):  # beside an ignored one
        F.cross_entropy(logits, np.array([[0, -100, 4], [0, 0, 0]]))
    with pytest.raises(ShapeError, match=r"targets of shape \(2,\) do not fit logits of shape \(2, 3, 4\)"):
        F.cross_entropy(logits, np.array([0, 1]))
    with pytest.raises(TypeError, match="targets must be integer"):
        F.cross_entropy(logits, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(logits, np.zeros((2, 3), dtype=int), reduction="avg")
    with np.errstate(invalid="ignore"):
        assert np.isnan(F.cross_entropy(logits, np.full((2, 3), -100)).item()), (
            "all ignored: nan, as in PyTorch"
        )


@settings(max_examples=examples(10))
@given(
    data=st.data(), B=st.integers(1, 4), T=st.integers(1, 5), H=st.integers(1, 3), seed=st.integers(0, 2**16)
)
def test_masked_mean_and_last_state(data, B, T, H, seed):
    lens = data.draw(lengths(B, T))
    x = tg.Tensor(np.random.default_rng(seed).normal(size=(B, T, H)), requires_grad=True)
    mask = F.sequence_mask(lens, T).numpy()
    np.testing.assert_array_equal(mask, np.arange(T)[None, :] < lens[:, None])
    want_mean = np.stack([x.numpy()[b, : lens[b]].mean(axis=0) for b in range(B)])
    np.testing.assert_allclose(F.masked_mean(x, lens).numpy(), want_mean, rtol=1e-13)
    want_last = np.stack([x.numpy()[b, lens[b] - 1] for b in range(B)])
    np.testing.assert_array_equal(F.last_state(x, lens).numpy(), want_last)
    assert gradcheck(lambda x: (F.masked_mean(x, lens), F.last_state(x, lens)), [x], seed=seed)
    x.grad = None
    (F.masked_mean(x, lens).sum() + F.last_state(x, lens).sum()).backward()
    assert not x.grad[~mask].any(), "padding must get no gradient"


def test_sequence_helpers_reject_bad_lengths():
    x = tg.randn(2, 3, 4)
    with pytest.raises(ValueError, match=r"lengths\[0\] = 0 is outside \[1, 3\]"):
        F.last_state(x, [0, 3])
    with pytest.raises(ValueError, match=r"lengths\[1\] = 4 is outside \[1, 3\]"):
        F.masked_mean(x, [1, 4])
    z = x.numpy().astype(np.float64)
    softmax = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)  # the definition, not the op's formula
    np.testing.assert_allclose(F.log_softmax(x).numpy(), np.log(softmax), rtol=1e-5, atol=1e-6)
