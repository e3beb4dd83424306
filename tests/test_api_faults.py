"""Faults around the engine's observers that are not errors of a bad call: a handle removed
twice, a backward pass that fails, a profiled op that raises (tests/test_profiler.py)."""

import numpy as np
import pytest

import dezero
import dezero.layers as L
from dezero import Variable


def test_removing_a_handle_twice_leaves_other_registrations_of_the_same_function():
    calls = []

    def hook(g):
        calls.append(1)

    x = Variable(np.array(1.0))
    first, second = x.register_hook(hook), x.register_hook(hook)
    first.remove()
    first.remove()  # a no-op: must not take `second`'s registration of the same function
    (x * 2).backward()
    assert calls == [1]
    second.remove()
    layer = L.Linear(2, in_size=2)
    seen = []

    def forward_hook(layer, inputs, output):
        seen.append(1)

    a, b = layer.register_forward_hook(forward_hook), layer.register_forward_hook(forward_hook)
    a.remove()
    a.remove()
    layer(np.ones((1, 2), np.float32))
    assert seen == [1]
    b.remove()


class _Fails(dezero.Function):
    def forward(self, x):
        return x * 1

    def backward(self, gy):
        raise RuntimeError("failed gradient")


@pytest.mark.parametrize("hooked", [False, True])
def test_a_failed_backward_keeps_a_leafs_earlier_gradient(hooked):
    x = Variable(np.array([1.0, 2.0]))
    if hooked:
        x.register_hook(lambda g: g * 1)
    (x * 2).sum().backward()
    before = x.grad.data.copy()
    y = x * 3  # reaches x first
    z = _Fails()(x * 1)
    with pytest.raises(RuntimeError, match="failed gradient"):
        (y + z).sum().backward()
    np.testing.assert_array_equal(x.grad.data, before)
    (x * 1).sum().backward()  # and the next pass adds to it as usual
    np.testing.assert_array_equal(x.grad.data, before + 1)
