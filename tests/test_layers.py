"""Layer: registration order, buffers, devices, state dicts, safe save/load; Linear, Dropout."""

import gc
import math
import os
import subprocess
import sys
import weakref
import zipfile

import numpy as np
import pytest

import dezero
import dezero.functions as F
import dezero.layers as L
from dezero import Parameter, Variable, cuda
from dezero.layers import CheckpointError


class Block(L.Layer):
    def __init__(self):
        super().__init__()
        self.fc = L.Linear(3, in_size=2)
        self.register_buffer("running", np.zeros(3, dtype=np.float32))

    def forward(self, x):
        return self.fc(x)


class Net(L.Layer):
    """Parameters, a layer, a list and a tuple of layers, a direct Parameter, a buffer."""

    def __init__(self):
        super().__init__()
        self.scale = Parameter(np.ones(1, dtype=np.float32), name="scale")
        self.first = L.Linear(4, in_size=3)
        self.blocks = [Block(), Block()]
        self.pair = (L.Linear(2, in_size=4), L.Linear(2, in_size=4))
        self.size = 7  # not registered
        self.register_buffer("count", None)

    def forward(self, x):
        return self.pair[0](self.first(x)) * self.scale


EXPECTED = [
    "scale",
    "first/W", "first/b",
    "blocks/0/fc/W", "blocks/0/fc/b",
    "blocks/1/fc/W", "blocks/1/fc/b",
    "pair/0/W", "pair/0/b",
    "pair/1/W", "pair/1/b",
]  # fmt: skip


# =============================================================================
# Registration
# =============================================================================
def test_params_register_in_assignment_order():
    net = Net()
    assert [name for name, _ in net.named_params()] == EXPECTED
    assert [id(p) for p in net.params()] == [id(p) for _, p in net.named_params()]
    assert net.first.W is dict(net.named_params())["first/W"]


def test_parameter_order_is_the_same_in_fresh_processes():
    code = (
        "from tests.test_layers import Net; "
        "print(','.join(n for n, _ in Net().named_params()))"
    )
    outs = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), check=True,
        ).stdout.strip()
        outs.add(out)
    assert outs == {",".join(EXPECTED)}


def test_reassignment_keeps_position_and_unregisters_non_members():
    net = Net()
    net.first = L.Linear(5, in_size=3)  # replaced: same place in the order
    assert [n for n, _ in net.named_params()] == EXPECTED
    net.scale = None  # no longer a parameter
    assert "scale" not in dict(net.named_params())
    del net.first
    assert not any(n.startswith("first/") for n, _ in net.named_params())


def test_shared_parameters_and_layers_appear_once():
    class Tied(L.Layer):
        def __init__(self):
            super().__init__()
            self.a = L.Linear(2, in_size=2)
            self.b = self.a
            self.extra = [self.a.W]

    names = [n for n, _ in Tied().named_params()]
    assert names == ["a/W", "a/b"]


def test_empty_list_filled_later_is_registered():
    class Growing(L.Layer):
        def __init__(self):
            super().__init__()
            self.layers = []
            for _ in range(2):
                self.layers.append(L.Linear(1, in_size=1))

    assert [n for n, _ in Growing().named_params()] == [
        "layers/0/W", "layers/0/b", "layers/1/W", "layers/1/b"
    ]


def test_missing_super_init_is_reported():
    class Bad(L.Layer):
        def __init__(self):
            self.l1 = L.Linear(2)

    with pytest.raises(AttributeError, match=r"super\(\).__init__\(\)"):
        Bad()


def test_cleargrads_clears_every_parameter():
    net = Net()
    y = net(np.ones((2, 3), dtype=np.float32))
    F.sum(y).backward()
    assert all(p.grad is not None for p in (net.scale, net.first.W, net.pair[0].b))
    net.cleargrads()
    assert all(p.grad is None for p in net.params())


def test_call_keeps_weak_references_to_inputs_and_outputs():
    layer = L.Linear(2, in_size=3)
    x = Variable(np.ones((1, 3), dtype=np.float32))
    y = layer(x)
    assert layer.inputs[0]() is x and layer.outputs[0]() is y
    del y
    gc.collect()
    assert layer.outputs[0]() is None


def test_forward_not_implemented_names_the_class():
    class Empty(L.Layer):
        pass

    with pytest.raises(NotImplementedError, match="Empty"):
        Empty()(1)


# =============================================================================
# Buffers
# =============================================================================
def test_buffers_are_saved_but_not_trained():
    net = Net()
    assert all(p is not net.blocks[0].running for p in net.params())
    names = [n for n, _ in net.named_buffers()]
    assert names == ["blocks/0/running", "blocks/1/running", "count"]
    state = net.state_dict()
    assert "blocks/0/running" in state and "count" not in state  # None is left out
    net.count = np.array(5)  # set later by plain assignment
    assert int(net.state_dict()["count"]) == 5
    assert [n for n, _ in net.named_params()] == EXPECTED


def test_register_buffer_errors():
    net = Net()
    with pytest.raises(ValueError, match="already a parameter"):
        net.register_buffer("first", None)
    with pytest.raises(TypeError, match="buffer 'x' must be a NumPy/CuPy array or None, not list"):
        net.register_buffer("x", [1, 2])
    with pytest.raises(ValueError, match="identifier"):
        net.register_buffer("a/b", None)


# =============================================================================
# Linear, Dropout
# =============================================================================
def test_linear_lazy_init_shape_scale_and_dtype():
    layer = L.Linear(200)
    assert layer.W.data is None and layer.in_size is None
    x = np.random.default_rng(0).standard_normal((5, 100)).astype(np.float32)
    y = layer(x)
    assert y.shape == (5, 200) and y.dtype == np.float32
    assert layer.W.shape == (100, 200) and layer.W.dtype == np.float32
    assert layer.in_size == 100
    assert abs(float(layer.W.data.std()) - math.sqrt(1 / 100)) < 0.005
    F.sum(y).backward()
    assert layer.W.grad.dtype == np.float32 and layer.b.grad.dtype == np.float32


def test_linear_init_is_reproducible_with_the_seed():
    np.random.seed(3)  # noqa: NPY002  (dezero draws from the global RNG, as the book does)
    a = L.Linear(4, in_size=6).W.data
    np.random.seed(3)  # noqa: NPY002
    b = L.Linear(4)
    b(np.zeros((1, 6), dtype=np.float32))
    assert np.array_equal(a, b.W.data)


def test_linear_options():
    layer = L.Linear(3, nobias=True, dtype=np.float64, in_size=2)
    assert layer.b is None and layer.W.dtype == np.float64
    assert [n for n, _ in layer.named_params()] == ["W"]
    y = layer(np.ones((4, 2)))
    np.testing.assert_allclose(y.data, np.ones((4, 2)) @ layer.W.data)


def test_linear_with_leading_axes():
    layer = L.Linear(3)
    assert layer(np.ones((2, 5, 4), dtype=np.float32)).shape == (2, 5, 3)


def test_linear_rejects_a_changed_feature_size():
    layer = L.Linear(3)
    layer(np.ones((2, 4), dtype=np.float32))
    with pytest.raises(ValueError, match=r"input has 5 features .* in_size=4"):
        layer(np.ones((2, 5), dtype=np.float32))
    fixed = L.Linear(3, in_size=2)
    with pytest.raises(ValueError, match=r"input has 6 features .* in_size=2"):
        fixed(np.ones((1, 6), dtype=np.float32))


def test_dropout_layer_train_and_test_mode():
    layer = L.Dropout(0.5)
    x = np.ones((100, 100), dtype=np.float32)
    y = layer(x)
    kept = y.data != 0
    assert 0.4 < kept.mean() < 0.6
    np.testing.assert_allclose(y.data[kept], 2.0)
    with dezero.test_mode():
        np.testing.assert_array_equal(layer(x).data, x)
    with pytest.raises(ValueError, match=r"dropout_ratio must be in \[0, 1\), got 1.5"):
        L.Dropout(1.5)
    assert list(layer.params()) == []


# =============================================================================
# state_dict / load_state_dict
# =============================================================================
def trained_net():
    net = Net()
    net.count = np.array(3, dtype=np.int64)
    rng = np.random.default_rng(1)
    for p in net.params():
        p.data = p.data + rng.standard_normal(p.shape).astype(p.dtype)
    net.blocks[1].running = np.arange(3, dtype=np.float32)
    return net


def assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype
        np.testing.assert_array_equal(sa[k], sb[k])


def test_state_dict_is_an_ordered_copy():
    net = trained_net()
    state = net.state_dict()
    assert list(state) == [*EXPECTED[:5], "blocks/0/running", *EXPECTED[5:7],
                           "blocks/1/running", *EXPECTED[7:], "count"]
    state["first/W"][...] = 0
    assert np.any(net.first.W.data != 0)


def test_load_state_dict_round_trip_is_exact():
    a, b = trained_net(), Net()
    missing, unexpected = b.load_state_dict(a.state_dict())
    assert missing == [] and unexpected == []
    assert_same_state(a, b)
    b.first.W.data[...] = 0  # loaded arrays are copies, not views of the source
    assert np.any(a.first.W.data != 0)


def test_load_state_dict_into_lazy_layers():
    src = L.Linear(3)
    src(np.ones((1, 5), dtype=np.float32))
    dst = L.Linear(3)
    dst.load_state_dict(src.state_dict())
    assert dst.in_size == 5
    np.testing.assert_array_equal(dst.W.data, src.W.data)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda s: s.pop("first/b"), r"missing keys: \['first/b'\]"),
        (lambda s: s.__setitem__("bogus/W", np.ones(2)), r"unexpected keys: \['bogus/W'\]"),
        (lambda s: s.__setitem__("pair/1/W", np.ones((4, 3), dtype=np.float32)),
         r"shape mismatch for 'pair/1/W': got \(4, 3\), the model has \(4, 2\)"),
        (lambda s: s.__setitem__("count", np.array(2.5, dtype=np.float32)),
         r"dtype mismatch for 'count': got float32, the model has int64"),
        (lambda s: s.__setitem__("first/W", [1, 2]), r"'first/W' is a list, not an array"),
    ],
)
def test_load_state_dict_errors_name_the_offender_and_change_nothing(edit, match):
    net = trained_net()
    before = net.state_dict()
    state = trained_net().state_dict()
    edit(state)
    with pytest.raises(CheckpointError, match=match):
        net.load_state_dict(state)
    after = net.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_load_state_dict_non_strict_reports_keys():
    net = Net()
    state = trained_net().state_dict()
    state.pop("first/b")
    state["bogus"] = np.ones(1)
    missing, unexpected = net.load_state_dict(state, strict=False)
    assert missing == ["first/b"] and unexpected == ["bogus"]
    np.testing.assert_array_equal(net.first.W.data, state["first/W"])
    with pytest.raises(CheckpointError, match="shape mismatch"):
        net.load_state_dict({"first/W": np.ones((1, 1), dtype=np.float32)}, strict=False)


def test_checkpoint_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)


# =============================================================================
# save_weights / load_weights
# =============================================================================
def test_save_load_round_trip_is_exact(tmp_path):
    a, b = trained_net(), Net()
    path = tmp_path / "net.npz"
    a.save_weights(path)
    b.load_weights(path)
    assert_same_state(a, b)
    # a plain NumPy archive, readable without pickle, keys as in the book ('l1/W')
    with np.load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(a.state_dict())
    # nothing but the file itself is left in the folder (the temporary was renamed)
    assert os.listdir(tmp_path) == ["net.npz"]


def test_save_weights_keeps_the_exact_name_and_overwrites(tmp_path):
    net = trained_net()
    path = tmp_path / "weights"
    net.save_weights(str(path))
    assert path.exists()
    net.first.W.data[...] = 1
    net.save_weights(str(path))
    other = Net()
    other.load_weights(str(path))
    np.testing.assert_array_equal(other.first.W.data, 1)


def test_failed_save_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    net = trained_net()
    path = tmp_path / "net.npz"
    net.save_weights(path)
    original = path.read_bytes()

    def broken_write(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np.lib.format, "write_array", broken_write)
    with pytest.raises(OSError, match="disk full"):
        Net().save_weights(path)
    assert path.read_bytes() == original
    assert os.listdir(tmp_path) == ["net.npz"]


def test_load_weights_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        Net().load_weights(tmp_path / "nope.npz")


def saved(tmp_path, state=None):
    path = tmp_path / "w.npz"
    if state is None:
        trained_net().save_weights(path)
    else:
        np.savez(path, **state)
    return path


@pytest.mark.parametrize("cut", [0, 10, 200, 0.5, -1])
def test_truncated_file_raises_checkpoint_error(tmp_path, cut):
    path = saved(tmp_path)
    raw = path.read_bytes()
    n = int(len(raw) * cut) if isinstance(cut, float) else (cut % len(raw))
    path.write_bytes(raw[:n])
    with pytest.raises(CheckpointError, match=r"w\.npz.*truncated, corrupted"):
        Net().load_weights(path)


def test_corrupted_file_raises_checkpoint_error(tmp_path):
    path = saved(tmp_path)
    raw = path.read_bytes()
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("first/W.npy")
    start = info.header_offset
    name_len = int.from_bytes(raw[start + 26:start + 28], "little")
    extra_len = int.from_bytes(raw[start + 28:start + 30], "little")
    npy = start + 30 + name_len + extra_len  # where the .npy member begins
    # flip a byte in the member's name, its .npy header, its array data, the footer
    for pos in (start + 31, npy + 20, npy + 128 + 5, len(raw) - 1):
        bad = bytearray(raw)
        bad[pos] ^= 0xFF
        path.write_bytes(bytes(bad))
        with pytest.raises(CheckpointError, match=r"w\.npz"):
            Net().load_weights(path)


def test_every_single_byte_flip_is_detected(tmp_path):
    layer = L.Linear(2, in_size=2)
    path = tmp_path / "w.npz"
    layer.save_weights(path)
    raw = path.read_bytes()
    undetected = []
    for pos in range(len(raw)):
        bad = bytearray(raw)
        bad[pos] ^= 0x55
        path.write_bytes(bytes(bad))
        other = L.Linear(2, in_size=2)
        try:
            other.load_weights(path)
        except CheckpointError:
            continue
        if not all(np.array_equal(a, b) for a, b in
                   zip(layer.state_dict().values(), other.state_dict().values())):
            undetected.append(pos)
    assert undetected == []


def test_not_an_npz_file(tmp_path):
    path = tmp_path / "w.npz"
    path.write_text("hello, I am not a zip archive")
    with pytest.raises(CheckpointError, match=r"w\.npz.*not a zip file"):
        Net().load_weights(path)


def test_pickled_objects_are_refused(tmp_path):
    path = saved(tmp_path, {"first/W": np.array([{"evil": 1}], dtype=object)})
    with pytest.raises(CheckpointError, match=r"w\.npz.*Python objects, which need pickle"):
        Net().load_weights(path)


def test_saving_object_arrays_is_refused(tmp_path):
    net = Net()
    net.count = np.array([None], dtype=object)
    with pytest.raises(ValueError, match="pickle"):
        net.save_weights(tmp_path / "w.npz")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda s: s.pop("first/b"), r"missing keys: \['first/b'\]"),
        (lambda s: s.__setitem__("extra/W", np.ones(2)), r"unexpected keys: \['extra/W'\]"),
        (lambda s: s.__setitem__("first/W", np.ones((2, 2), dtype=np.float32)),
         r"shape mismatch for 'first/W'"),
    ],
)
def test_mismatched_file_names_path_and_key(tmp_path, edit, match):
    state = trained_net().state_dict()
    edit(state)
    path = saved(tmp_path, state)
    net = Net()
    with pytest.raises(CheckpointError, match=r"w\.npz.*" + match):
        net.load_weights(path)


def test_book_style_file_from_np_savez_loads(tmp_path):
    a = trained_net()
    path = saved(tmp_path, a.state_dict())  # plain np.savez, as the book writes
    b = Net()
    b.load_weights(path)
    assert_same_state(a, b)


# =============================================================================
# Devices (GPU)
# =============================================================================
@pytest.mark.gpu
def test_to_gpu_to_cpu_move_params_grads_and_buffers():
    cp = cuda.cupy
    net = trained_net()
    y = net(np.ones((2, 3), dtype=np.float32))
    F.sum(y).backward()
    net.to_gpu()
    assert isinstance(net.first.W.data, cp.ndarray)
    assert isinstance(net.first.W.grad.data, cp.ndarray)
    assert isinstance(net.blocks[0].running, cp.ndarray)
    net.to_cpu()
    assert isinstance(net.first.W.data, np.ndarray)
    assert isinstance(net.blocks[0].running, np.ndarray)


@pytest.mark.gpu
def test_save_and_load_on_gpu_stay_on_gpu(tmp_path):
    cp = cuda.cupy
    a = trained_net().to_gpu()
    path = tmp_path / "w.npz"
    a.save_weights(path)
    assert isinstance(a.first.W.data, cp.ndarray)  # save did not move the model
    state = a.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    b = Net().to_gpu()
    b.load_weights(path)
    assert isinstance(b.first.W.data, cp.ndarray)
    assert isinstance(b.blocks[1].running, cp.ndarray)
    np.testing.assert_array_equal(cp.asnumpy(b.first.W.data), cp.asnumpy(a.first.W.data))
    c = Net()
    c.load_weights(path)  # a CPU model stays on the CPU
    assert isinstance(c.first.W.data, np.ndarray)


@pytest.mark.gpu
def test_linear_lazy_init_on_gpu():
    cp = cuda.cupy
    layer = L.Linear(3).to_gpu()
    y = layer(cp.ones((2, 4), dtype=cp.float32))
    assert isinstance(layer.W.data, cp.ndarray) and y.dtype == np.float32


@pytest.mark.gpu
def test_linear_lazy_init_from_a_gpu_input_puts_the_bias_there_too():
    cp = cuda.cupy
    layer = L.Linear(3)  # never moved: the first input decides the device
    y = layer(cp.ones((2, 4), dtype=cp.float32))
    assert isinstance(layer.W.data, cp.ndarray) and isinstance(layer.b.data, cp.ndarray)
    y.backward()
    assert isinstance(layer.b.grad.data, cp.ndarray)


def test_weakref_to_layer_outputs_does_not_keep_graph():
    layer = L.Linear(2, in_size=2)
    y = layer(np.ones((1, 2), dtype=np.float32))
    creator = weakref.ref(y.creator)
    del y
    assert creator() is None
