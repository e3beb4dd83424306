"""Shape functions: what the op table cannot say (errors, views, scatter semantics, orders)."""

import numpy as np
import pytest

import dezero.functions as F
from dezero import Variable, cuda


def _np(v):
    return cuda.as_numpy(v.data if isinstance(v, Variable) else v)


# --- errors ----------------------------------------------------------------------
def test_reshape_to_an_impossible_size_names_both_shapes():
    with pytest.raises(ValueError, match=r"reshape: cannot reshape an array of shape \(2, 3\) "
                                         r"\(size 6\) into shape \(4, 2\)"):
        F.reshape(np.zeros((2, 3)), (4, 2))
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        Variable(np.zeros((2, 3))).reshape(5, -1)


def test_broadcast_to_an_incompatible_shape_names_both_shapes():
    with pytest.raises(ValueError, match=r"broadcast_to: cannot broadcast an array of shape "
                                         r"\(2, 3\) to shape \(4, 3\)"):
        F.broadcast_to(np.zeros((2, 3)), (4, 3))


def test_sum_to_an_incompatible_shape_names_both_shapes():
    with pytest.raises(ValueError, match=r"sum_to: cannot sum an array of shape \(2, 3\) to "
                                         r"shape \(4,\)"):
        F.sum_to(np.zeros((2, 3)), (4,))


def test_get_item_out_of_bounds_names_index_and_shape():
    x = Variable(np.zeros((3, 4)))
    with pytest.raises(IndexError, match=r"get_item: index 5 does not fit an input of shape "
                                         r"\(3, 4\).*index 5 is out of bounds for axis 0"):
        x[5]
    with pytest.raises(IndexError, match=r"index \(slice\(None, None, None\), 7\) .* shape "
                                         r"\(3, 4\)"):
        F.get_item(x, (slice(None), 7))
    with pytest.raises(IndexError, match=r"array\(shape=\(2,\), dtype=int64\) .* \(3, 4\)"):
        x[np.array([0, 9])]


def test_get_item_boolean_mask_of_wrong_shape_names_shape():
    with pytest.raises(IndexError, match=r"shape \(3, 4\)"):
        Variable(np.zeros((3, 4)))[np.array([True, False])]


def test_concat_of_mismatched_shapes_names_the_shapes():
    with pytest.raises(ValueError, match=r"concat: shapes \(2, 3\), \(2, 4\) do not match "
                                         r"outside axis 0"):
        F.concat([np.zeros((2, 3)), np.zeros((2, 4))])
    with pytest.raises(ValueError, match=r"shapes \(2, 3\), \(2, 3, 1\)"):
        F.concat([np.zeros((2, 3)), np.zeros((2, 3, 1))], axis=1)
    with pytest.raises(ValueError, match="axis 2 is out of range for 2 dimensions"):
        F.concat([np.zeros((2, 3)), np.zeros((2, 3))], axis=2)
    with pytest.raises(ValueError, match="zero-dimensional"):
        F.concat([np.zeros(()), np.zeros(())])
    with pytest.raises(ValueError, match="at least one"):
        F.concat([])


def test_stack_of_mismatched_shapes_names_the_shapes():
    with pytest.raises(ValueError, match=r"stack: all inputs must have the same shape, got "
                                         r"\(2, 3\), \(3, 2\)"):
        F.stack([np.zeros((2, 3)), np.zeros((3, 2))])


def test_split_into_uneven_sections_names_shape_and_axis():
    with pytest.raises(ValueError, match=r"axis 1 of an input of shape \(2, 5\) \(length 5\) "
                                         r"cannot be split into 2 equal sections"):
        F.split(np.zeros((2, 5)), 2, axis=1)


def test_squeeze_of_a_long_axis_names_it():
    with pytest.raises(ValueError, match=r"squeeze: axis 0 of an input of shape \(2, 1\) has "
                                         r"length 2, not 1"):
        F.squeeze(np.zeros((2, 1)), 0)


def test_pad_rejects_other_modes_and_negative_widths():
    with pytest.raises(ValueError, match="only mode='constant'"):
        F.pad(np.zeros(3), 1, mode="reflect")
    with pytest.raises(ValueError, match="negative"):
        F.pad(np.zeros(3), -1)
    with pytest.raises(ValueError, match="does not fit an input with 2 dimensions"):
        F.pad(np.zeros((2, 2)), ((1, 1), (1, 1), (1, 1)))


def test_transpose_with_bad_axes_names_the_shape():
    with pytest.raises(ValueError, match=r"axes \(0, 0\) are not a permutation .* \(2, 3\)"):
        F.transpose(np.zeros((2, 3)), (0, 0))


def test_flatten_needs_a_batch_axis():
    with pytest.raises(ValueError, match="at least one dimension"):
        F.flatten(np.zeros(()))


# --- get_item semantics -----------------------------------------------------------
def test_repeated_indices_accumulate_gradients(xp):
    x = Variable(xp.arange(5.0, dtype=np.float32))
    y = x[xp.array([1, 1, 1, 4, 0, 4])]
    F.sum(y * xp.arange(1.0, 7.0, dtype=np.float32)).backward()
    np.testing.assert_array_equal(_np(x.grad), [5.0, 6.0, 0.0, 0.0, 10.0])
    assert x.grad.dtype == np.float32


def test_repeated_index_pairs_accumulate_gradients(xp):
    x = Variable(xp.zeros((3, 3)))
    y = x[xp.array([0, 0, 2]), xp.array([1, 1, 2])]
    y.backward()
    expected = np.zeros((3, 3))
    expected[0, 1] = 2
    expected[2, 2] = 1
    np.testing.assert_array_equal(_np(x.grad), expected)


def test_boolean_mask_gradient_and_value(xp):
    data = xp.asarray(np.array([[1.0, -2.0], [-3.0, 4.0]]))
    x = Variable(data)
    y = x[data > 0]
    np.testing.assert_array_equal(_np(y), [1.0, 4.0])
    F.sum(y * y).backward()
    np.testing.assert_array_equal(_np(x.grad), [[2.0, 0.0], [0.0, 8.0]])


def test_variable_indices_are_used_as_data():
    x = Variable(np.arange(4.0))
    idx = Variable(np.array([3, 0]))
    np.testing.assert_array_equal(x[idx].data, [3.0, 0.0])


def test_get_item_third_order_derivative():
    # y = sum(x[idx]^4) with idx repeating 0: d3y/dx0^3 = 2 * 24 x0
    x = Variable(np.array([0.5, 2.0]))
    y = F.sum(x[np.array([0, 0, 1])] ** 4)
    y.backward(create_graph=True)
    g1 = x.grad
    x.cleargrad()
    F.sum(g1).backward(create_graph=True)
    g2 = x.grad
    x.cleargrad()
    F.sum(g2 * np.array([1.0, 0.0])).backward()
    np.testing.assert_allclose(x.grad.data, [48.0 * 0.5, 0.0])


def test_basic_slices_return_views_without_copy():
    data = np.arange(12.0).reshape(3, 4)
    x = Variable(data)
    assert np.shares_memory(x[1:, ::2].data, data)
    assert np.shares_memory(F.reshape(x, (4, 3)).data, data)
    assert np.shares_memory(F.transpose(x).data, data)
    assert np.shares_memory(F.expand_dims(x, 0).data, data)


def test_reshape_to_the_same_shape_is_free():
    x = Variable(np.zeros((2, 3)))
    assert F.reshape(x, (2, 3)) is x
    assert F.broadcast_to(x, (2, 3)) is x
    assert F.sum_to(x, (2, 3)) is x


# --- split / concat / stack --------------------------------------------------------
def test_split_returns_a_list_and_copes_with_unused_outputs(xp):
    x = Variable(xp.asarray(np.arange(12.0, dtype=np.float32).reshape(2, 6)))
    parts = F.split(x, 3, axis=1)
    assert isinstance(parts, list)
    assert [p.shape for p in parts] == [(2, 2)] * 3
    F.sum(parts[2] * 3).backward()
    expected = np.zeros((2, 6), dtype=np.float32)
    expected[:, 4:] = 3
    np.testing.assert_array_equal(_np(x.grad), expected)
    assert x.grad.dtype == np.float32
    assert isinstance(F.split(x, 1, axis=0), list)


def test_split_unused_output_second_order():
    x = Variable(np.array([1.0, 2.0, 3.0, 4.0]))
    a, _, c = F.split(x, [1, 2])
    y = F.sum(a**3) + F.sum(c**3)
    y.backward(create_graph=True)
    g = x.grad
    x.cleargrad()
    F.sum(g).backward()
    np.testing.assert_allclose(x.grad.data, [6.0, 0.0, 18.0, 24.0])


def test_concat_split_round_trip_and_gradients(xp):
    a = Variable(xp.ones((2, 1)))
    b = Variable(xp.ones((2, 3)) * 2)
    y = F.concat([a, b], axis=1)
    assert y.shape == (2, 4)
    F.sum(y * xp.arange(4.0)).backward()
    np.testing.assert_array_equal(_np(a.grad), [[0.0], [0.0]])
    np.testing.assert_array_equal(_np(b.grad), [[1.0, 2.0, 3.0]] * 2)
    p, q = F.split(y, [1], axis=1)
    np.testing.assert_array_equal(_np(p), _np(a))
    np.testing.assert_array_equal(_np(q), _np(b))


def test_stack_gradients_go_to_each_input():
    xs = [Variable(np.full(3, float(i))) for i in range(3)]
    y = F.stack(xs, axis=1)
    assert y.shape == (3, 3)
    F.sum(y * np.array([1.0, 10.0, 100.0])).backward()
    for x, w in zip(xs, (1.0, 10.0, 100.0)):
        np.testing.assert_array_equal(x.grad.data, [w] * 3)


# --- dtypes ------------------------------------------------------------------------
def test_pad_keeps_float32_with_a_float_fill():
    y = F.pad(np.ones((2, 2), dtype=np.float32), 1, constant_values=np.float64(0.5))
    assert y.dtype == np.float32
    assert y.data[0, 0] == 0.5


def test_get_item_gradient_dtype_is_float32():
    x = Variable(np.ones((4, 3), dtype=np.float32))
    x[np.array([0, 0])].backward()
    assert x.grad.dtype == np.float32


def test_where_and_concat_take_raw_device_arrays(xp):
    # CuPy arrays have a .data attribute of their own (a memory pointer): never unwrap with it
    cond = xp.asarray(np.array([True, False, True]))
    a = Variable(xp.asarray(np.array([1.0, 2.0, 3.0])))
    y = F.where(cond, a, xp.zeros(3))
    np.testing.assert_array_equal(_np(y), [1.0, 0.0, 3.0])
    y.backward()
    np.testing.assert_array_equal(_np(a.grad), [1.0, 0.0, 1.0])
    z = F.concat([xp.ones((1, 2)), xp.zeros((2, 2))])
    assert z.shape == (3, 2)
