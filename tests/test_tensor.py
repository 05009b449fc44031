"""The Tensor object: construction, dtypes, devices, host copies, seeded factories."""

import numpy as np
import pytest
import strict_backend

import tinygrad_rnn as tg
from tinygrad_rnn import backend

# ---- construction and dtypes -----------------------------------------------------------------


@pytest.mark.parametrize(
    "data, dtype, shape",
    [
        ([1.0, 2.0], np.float32, (2,)),  # float default: float32
        ([[1, 2], [3, 4]], np.int64, (2, 2)),  # ints stay ints (token ids)
        ([1, 2.5], np.float32, (2,)),  # mixed -> float -> float32
        (3.0, np.float32, ()),  # Python scalars
        (7, np.int64, ()),
        (True, np.bool_, ()),
        (np.arange(3, dtype=np.float64), np.float64, (3,)),  # arrays keep their dtype
        (np.arange(3, dtype=np.int32), np.int32, (3,)),
        (np.float64(2.0), np.float64, ()),
    ],
    ids=[
        "float_list",
        "int_list",
        "mixed_list",
        "float",
        "int",
        "bool",
        "float64_array",
        "int32_array",
        "numpy_scalar",
    ],
)
def test_constructor_infers_dtype_and_shape(device, data, dtype, shape):
    t = tg.Tensor(data, device=device)
    assert t.dtype == dtype and t.shape == shape and t.device == device
    assert isinstance(t.data, tg.get_backend(device).array_type)
    np.testing.assert_array_equal(t.numpy(), np.asarray(data, dtype=dtype))


@pytest.mark.parametrize("dtype", ["float64", np.float64, np.dtype("float64"), "f8"])
def test_dtype_takes_numpy_dtypes_and_their_names(dtype):
    t = tg.Tensor([1, 2], dtype=dtype)
    assert t.dtype == np.float64
    assert tg.Tensor([1.5, 2.5], dtype="int32").dtype == np.int32


def test_constructor_copies_from_tensors_and_device_arrays():
    a = tg.Tensor([1.0, 2.0], device="strict")
    assert tg.Tensor(a).device == "strict"  # a tensor: same device
    assert tg.Tensor(a.data).device == "strict"  # a device array: its device
    moved = tg.Tensor(a.data, device="cpu")  # explicit hop through the host
    assert moved.device == "cpu" and isinstance(moved.data, np.ndarray)
    assert tg.Tensor(np.ones(2), device="strict").device == "strict"


def test_shape_attributes():
    t = tg.zeros(2, 3, 4)
    assert (t.shape, t.ndim, t.size, len(t)) == ((2, 3, 4), 3, 24, 2)
    assert tg.zeros((2, 3)).shape == (2, 3)


# ---- devices and host copies -----------------------------------------------------------------


def test_to_moves_between_devices_as_a_new_leaf(device):
    x = tg.Tensor([[1.0, 2.0]], requires_grad=True, dtype="float64")
    y = x.to(device)
    assert y.device == device and y.dtype == np.float64 and y.requires_grad and y.is_leaf
    np.testing.assert_array_equal(y.numpy(), [[1.0, 2.0]])
    assert y.to(device) is y
    back = y.to("cpu")
    assert back.device == "cpu" and isinstance(back.data, np.ndarray)


def test_numpy_is_a_host_copy(device):
    t = tg.Tensor([1.0, 2.0], device=device)
    host = t.numpy()
    assert type(host) is np.ndarray
    host[0] = 99.0
    assert t.numpy()[0] == 1.0


@pytest.mark.parametrize("value, kind", [(2.5, float), (3, int), (True, bool)])
def test_item_returns_a_python_number(device, value, kind):
    item = tg.Tensor([value], device=device).item()
    assert type(item) is kind and item == value


def test_assigning_data_replaces_the_values_on_the_same_device(device):
    t = tg.zeros(2, 2, device=device, dtype="float64")
    t.data = np.arange(4.0).reshape(2, 2)  # e.g. loading saved weights
    assert t.device == device and isinstance(t.data, tg.get_backend(device).array_type)
    np.testing.assert_array_equal(t.numpy(), [[0, 1], [2, 3]])
    t.data = tg.Tensor([[5.0, 6.0], [7.0, 8.0]])  # from a cpu tensor, moved
    np.testing.assert_array_equal(t.numpy(), [[5, 6], [7, 8]])


def test_default_device(monkeypatch):
    monkeypatch.setattr(backend, "_default_device", backend._default_device)
    assert tg.get_default_device() == "cpu" and tg.Tensor([1.0]).device == "cpu"
    tg.set_default_device("strict")
    assert tg.Tensor([1.0]).device == "strict" and tg.zeros(2).device == "strict"
    assert tg.Tensor(np.ones(2)).device == "strict"  # host data: the default
    assert tg.Tensor(tg.Tensor([1.0], device="cpu")).device == "cpu"  # a tensor: its own device
    assert isinstance(tg.randn(2).data, strict_backend.StrictArray)


# ---- factories and seeds ---------------------------------------------------------------------


@pytest.mark.parametrize("factory", [tg.zeros, tg.ones])
def test_zeros_and_ones(device, factory):
    t = factory(2, 3, device=device)
    assert t.shape == (2, 3) and t.dtype == np.float32 and t.device == device
    assert factory(2, dtype="float64", device=device).dtype == np.float64
    assert factory(2, device=device, requires_grad=True).requires_grad


@pytest.mark.parametrize(
    "draw",
    [
        lambda **kw: tg.randn(3, 4, **kw),
        lambda **kw: tg.uniform(3, 4, low=-0.5, high=0.5, **kw),
    ],
    ids=["randn", "uniform"],
)
def test_same_seed_gives_the_same_weights_on_every_device(draw):
    tg.manual_seed(1234)
    cpu = draw(device="cpu")
    cpu_next = draw(device="cpu")
    tg.manual_seed(1234)
    strict = draw(device="strict")
    assert strict.device == "strict" and cpu.dtype == strict.dtype == np.float32
    np.testing.assert_array_equal(cpu.numpy(), strict.numpy())
    assert not np.array_equal(cpu.numpy(), cpu_next.numpy())  # the stream moves on
    tg.manual_seed(1235)
    assert not np.array_equal(draw(device="cpu").numpy(), cpu.numpy())  # another seed, other weights
    rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(7)
    np.testing.assert_array_equal(
        draw(device="cpu", rng=rng_a).numpy(), draw(device="strict", rng=rng_b).numpy()
    )


def test_uniform_stays_in_its_range():
    u = tg.uniform(1000, low=-0.1, high=0.3, dtype="float64").numpy()
    assert u.dtype == np.float64 and u.min() >= -0.1 and u.max() < 0.3 and u.std() > 0.05
