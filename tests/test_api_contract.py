"""The public API contract (shared/API.md): every documented name exists, with the documented
parameters, in the documented order, with the documented defaults.

The book's readers call most of these positionally (``L.Linear(10)``, ``Conv2d(16, 3, 1, 1)``,
``SGD(0.1)``), so the documented parameters must be the leading positional parameters of the
signature, in order. Extra parameters (dezero's additions) are allowed only after them and
only with a default, so that no book call breaks.
"""

import inspect
import subprocess
import sys

import numpy as np
import pytest

import dezero
import dezero.cuda
import dezero.dataloaders
import dezero.datasets
import dezero.functions as F
import dezero.functions_conv
import dezero.layers as L
import dezero.models
import dezero.optimizers
import dezero.transforms
import dezero.utils
from dezero.core import Variable

REQ = inspect.Parameter.empty  # "required: no default"
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _same_default(actual, expected):
    if isinstance(expected, type) or callable(expected):
        return actual is expected
    if isinstance(expected, float):
        return isinstance(actual, (int, float)) and actual == pytest.approx(expected, rel=1e-12)
    return type(actual) is type(expected) and actual == expected


def check_signature(obj, expected, *, varargs=None, skip_self=False):
    """Assert ``obj`` accepts ``expected`` = [(name, default or REQ), ...] as its leading
    positional parameters (optionally followed by ``*varargs``); anything after them must
    be optional."""
    params = list(inspect.signature(obj).parameters.values())
    if skip_self:
        assert params and params[0].name == "self", f"{obj!r}: first parameter is not self"
        params = params[1:]
    where = getattr(obj, "__qualname__", repr(obj))
    names = [p.name for p in params]
    assert len(params) >= len(expected), f"{where}{inspect.signature(obj)}: missing parameters"
    for p, (name, default) in zip(params, expected):
        assert p.name == name, f"{where}: expected parameter {name!r}, got {names}"
        assert p.kind in _POSITIONAL, f"{where}: {name!r} must be positional-or-keyword"
        if default is REQ:
            assert p.default is REQ, f"{where}: {name!r} should be required"
        else:
            assert p.default is not REQ, f"{where}: {name!r} should default to {default!r}"
            assert _same_default(p.default, default), (
                f"{where}: {name!r} defaults to {p.default!r}, the contract says {default!r}"
            )
    rest = params[len(expected) :]
    if varargs is not None:
        assert rest and rest[0].kind == inspect.Parameter.VAR_POSITIONAL, (
            f"{where}: expected *{varargs}, got {names}"
        )
        assert rest[0].name == varargs
        rest = rest[1:]
    for p in rest:
        ok = p.default is not REQ or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        assert ok, f"{where}: extra parameter {p.name!r} must have a default"


# =============================================================================
# dezero (top level)
# =============================================================================
TOP_LEVEL = [
    "Variable", "Parameter", "Function", "Config", "using_config", "no_grad", "test_mode",
    "as_array", "as_variable", "setup_variable", "Layer", "Model", "Dataset", "DataLoader",
    "SeqDataLoader", "__version__",
]  # fmt: skip
SUBMODULES = [
    "functions", "functions_conv", "layers", "models", "optimizers", "datasets",
    "dataloaders", "transforms", "utils", "cuda", "core_simple",
]  # fmt: skip


@pytest.mark.parametrize("name", TOP_LEVEL)
def test_top_level_name_exists(name):
    assert hasattr(dezero, name), f"dezero.{name} is missing"


@pytest.mark.parametrize("name", SUBMODULES)
def test_submodule_is_an_attribute_of_the_package(name):
    mod = getattr(dezero, name)
    assert inspect.ismodule(mod) and mod.__name__ == f"dezero.{name}"


def test_top_level_objects_are_the_ones_of_their_modules():
    assert dezero.Variable is dezero.core.Variable
    assert dezero.Layer is L.Layer
    assert dezero.Model is dezero.models.Model
    assert dezero.Dataset is dezero.datasets.Dataset
    assert dezero.DataLoader is dezero.dataloaders.DataLoader
    assert dezero.SeqDataLoader is dezero.dataloaders.SeqDataLoader
    assert issubclass(dezero.Parameter, dezero.Variable)
    assert issubclass(dezero.Model, dezero.Layer)
    assert dezero.is_simple_core is False
    assert isinstance(dezero.__version__, str) and dezero.__version__.count(".") >= 1


def test_top_level_signatures():
    check_signature(dezero.Variable, [("data", None), ("name", None)])
    check_signature(dezero.Parameter, [("data", None), ("name", None)])
    check_signature(dezero.using_config, [("name", REQ), ("value", REQ)])
    check_signature(dezero.no_grad, [])
    check_signature(dezero.test_mode, [])
    check_signature(dezero.as_array, [("x", REQ), ("array_module", np)])
    check_signature(dezero.as_variable, [("obj", REQ)])
    check_signature(dezero.setup_variable, [])
    check_signature(dezero.Config, [])
    assert dezero.Config.enable_backprop is True and dezero.Config.train is True


def test_import_dezero_does_not_import_heavy_optional_packages():
    code = (
        "import sys, dezero, dezero.functions, dezero.layers, dezero.models, "
        "dezero.optimizers, dezero.datasets, dezero.dataloaders, dezero.transforms, "
        "dezero.utils, dezero.cuda, dezero.functions_conv; "
        "bad = [m for m in ('matplotlib', 'PIL', 'cupy') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# =============================================================================
# Variable and Function
# =============================================================================
VARIABLE_METHODS = {
    "backward": [("retain_grad", False), ("create_graph", False)],
    "cleargrad": [],
    "unchain": [],
    "unchain_backward": [],
    "sum": [("axis", None), ("keepdims", False)],
    "matmul": [("W", REQ)],
    "dot": [("W", REQ)],
    "max": [("axis", None), ("keepdims", False)],
    "min": [("axis", None), ("keepdims", False)],
    "to_cpu": [],
    "to_gpu": [],
}
OPERATORS = [
    "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__",
    "__rtruediv__", "__pow__", "__rpow__", "__neg__", "__getitem__", "__matmul__",
    "__rmatmul__", "__len__", "__repr__",
]  # fmt: skip


@pytest.mark.parametrize("name", sorted(VARIABLE_METHODS))
def test_variable_method_signature(name):
    check_signature(getattr(Variable, name), VARIABLE_METHODS[name], skip_self=True)


@pytest.mark.parametrize("name", ["reshape", "transpose"])
def test_variable_reshape_and_transpose_take_varargs(name):
    varargs = {"reshape": "shape", "transpose": "axes"}[name]
    check_signature(getattr(Variable, name), [], varargs=varargs, skip_self=True)


@pytest.mark.parametrize("name", ["shape", "ndim", "size", "dtype", "T"])
def test_variable_properties(name):
    assert isinstance(inspect.getattr_static(Variable, name), property)


@pytest.mark.parametrize("name", OPERATORS)
def test_variable_operators_are_defined(name):
    assert callable(getattr(Variable, name))


def test_variable_attributes_and_array_priority():
    x = Variable(np.array([1.0, 2.0]), name="x")
    assert (x.name, x.grad, x.creator, x.generation) == ("x", None, None, 0)
    assert x.data.shape == (2,)
    # ndarray.__add__ must defer to Variable.__radd__
    assert Variable.__array_priority__ > np.asarray(0.0).__array_priority__
    assert isinstance(np.ones(2) + x, Variable)


def test_function_interface():
    check_signature(dezero.Function, [])
    for name in ("__call__", "forward", "backward"):
        assert callable(getattr(dezero.Function, name))
    check_signature(dezero.Function.__call__, [], varargs="inputs", skip_self=True)


CORE_ARITHMETIC = {
    "add": ["x0", "x1"], "sub": ["x0", "x1"], "rsub": ["x0", "x1"], "mul": ["x0", "x1"],
    "div": ["x0", "x1"], "rdiv": ["x0", "x1"], "neg": ["x"], "pow": ["x", "c"],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CORE_ARITHMETIC))
def test_core_arithmetic_functions(name):
    check_signature(getattr(dezero.core, name), [(a, REQ) for a in CORE_ARITHMETIC[name]])


@pytest.mark.parametrize("name", sorted(CORE_ARITHMETIC))
def test_functions_reexports_the_core_arithmetic(name):
    # as DeZero's functions module does: programs written for it call F.add, F.pow, ...
    assert getattr(dezero.functions, name) is getattr(dezero.core, name)
    assert name in dezero.functions.__all__


# =============================================================================
# dezero.functions (and dezero.functions_conv)
# =============================================================================
FUNCTIONS = {
    # elementwise
    "sin": [("x", REQ)], "cos": [("x", REQ)], "tanh": [("x", REQ)], "exp": [("x", REQ)],
    "log": [("x", REQ)], "square": [("x", REQ)], "sqrt": [("x", REQ)], "abs": [("x", REQ)],
    "maximum": [("x0", REQ), ("x1", REQ)], "minimum": [("x0", REQ), ("x1", REQ)],
    "where": [("condition", REQ), ("x0", REQ), ("x1", REQ)],
    "softplus": [("x", REQ)], "gelu": [("x", REQ)],
    # shape
    "reshape": [("x", REQ), ("shape", REQ)],
    "transpose": [("x", REQ), ("axes", None)],
    "get_item": [("x", REQ), ("slices", REQ)],
    "expand_dims": [("x", REQ), ("axis", REQ)],
    "flatten": [("x", REQ)],
    "broadcast_to": [("x", REQ), ("shape", REQ)],
    "sum_to": [("x", REQ), ("shape", REQ)],
    "concat": [("xs", REQ)], "stack": [("xs", REQ)],
    "split": [("x", REQ), ("indices_or_sections", REQ)],
    "squeeze": [("x", REQ)], "pad": [("x", REQ), ("pad_width", REQ)],
    # reductions
    "sum": [("x", REQ), ("axis", None), ("keepdims", False)],
    "average": [("x", REQ), ("axis", None), ("keepdims", False)],
    "mean": [("x", REQ), ("axis", None), ("keepdims", False)],
    "max": [("x", REQ), ("axis", None), ("keepdims", False)],
    "min": [("x", REQ), ("axis", None), ("keepdims", False)],
    "logsumexp": [("x", REQ)], "var": [("x", REQ)], "std": [("x", REQ)],
    # linear algebra
    "matmul": [("x", REQ), ("W", REQ)],
    "linear": [("x", REQ), ("W", REQ), ("b", None)],
    "einsum": [("subscripts", REQ)],
    # activations
    "sigmoid": [("x", REQ)], "relu": [("x", REQ)],
    "leaky_relu": [("x", REQ), ("slope", 0.2)],
    "softmax": [("x", REQ), ("axis", 1)],
    "log_softmax": [("x", REQ), ("axis", 1)],
    # losses
    "mean_squared_error": [("x0", REQ), ("x1", REQ)],
    "softmax_cross_entropy": [("x", REQ), ("t", REQ)],
    "sigmoid_cross_entropy": [("x", REQ), ("t", REQ)],
    "binary_cross_entropy": [("p", REQ), ("t", REQ)],
    # others
    "accuracy": [("y", REQ), ("t", REQ)],
    "dropout": [("x", REQ), ("dropout_ratio", 0.5)],
    "batch_norm": [("x", REQ), ("gamma", REQ), ("beta", REQ), ("mean", REQ), ("var", REQ),
                   ("decay", 0.9), ("eps", 2e-5)],
    "batch_nrom": [("x", REQ), ("gamma", REQ), ("beta", REQ), ("mean", REQ), ("var", REQ),
                   ("decay", 0.9), ("eps", 2e-5)],
    "embed_id": [("x", REQ), ("W", REQ)],
    "clip": [("x", REQ), ("x_min", REQ), ("x_max", REQ)],
    # the book's composites
    "sigmoid_simple": [("x", REQ)],
    "softmax_simple": [("x", REQ), ("axis", 1)],
    "linear_simple": [("x", REQ), ("W", REQ), ("b", None)],
    "mean_squared_error_simple": [("x0", REQ), ("x1", REQ)],
    "softmax_cross_entropy_simple": [("x", REQ), ("t", REQ)],
}  # fmt: skip
CONV_FUNCTIONS = {
    "conv2d": [("x", REQ), ("W", REQ), ("b", None), ("stride", 1), ("pad", 0)],
    "deconv2d": [("x", REQ), ("W", REQ), ("b", None), ("stride", 1), ("pad", 0),
                 ("outsize", None)],
    "pooling": [("x", REQ), ("kernel_size", REQ), ("stride", 1), ("pad", 0)],
    "average_pooling": [("x", REQ), ("kernel_size", REQ), ("stride", 1), ("pad", 0)],
    "im2col": [("x", REQ), ("kernel_size", REQ), ("stride", 1), ("pad", 0),
               ("to_matrix", True)],
    "col2im": [("x", REQ), ("input_shape", REQ), ("kernel_size", REQ), ("stride", 1),
               ("pad", 0), ("to_matrix", True)],
    "conv2d_simple": [("x", REQ), ("W", REQ), ("b", None), ("stride", 1), ("pad", 0)],
    "pooling_simple": [("x", REQ), ("kernel_size", REQ), ("stride", 1), ("pad", 0)],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_signature(name):
    assert name in F.__all__, f"F.{name} is not exported in dezero.functions.__all__"
    check_signature(getattr(F, name), FUNCTIONS[name])


def test_variadic_and_multi_input_functions():
    check_signature(F.einsum, [("subscripts", REQ)], varargs="operands")


@pytest.mark.parametrize("name", sorted(CONV_FUNCTIONS))
@pytest.mark.parametrize("module", [F, dezero.functions_conv], ids=["F", "functions_conv"])
def test_conv_function_signature(module, name):
    fn = getattr(module, name)
    check_signature(fn, CONV_FUNCTIONS[name])
    assert fn is getattr(F, name)


def test_batch_nrom_is_the_book_alias_of_batch_norm():
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    g, b = np.ones(3, np.float32), np.zeros(3, np.float32)
    y1 = F.batch_norm(x, g, b, np.zeros(3, np.float32), np.ones(3, np.float32))
    y2 = F.batch_nrom(x, g, b, np.zeros(3, np.float32), np.ones(3, np.float32))
    np.testing.assert_array_equal(y1.data, y2.data)


# =============================================================================
# dezero.layers
# =============================================================================
LAYERS = {
    "Linear": [("out_size", REQ), ("nobias", False), ("dtype", np.float32), ("in_size", None)],
    "Conv2d": [("out_channels", REQ), ("kernel_size", REQ), ("stride", 1), ("pad", 0),
               ("nobias", False), ("dtype", np.float32), ("in_channels", None)],
    "Deconv2d": [("out_channels", REQ), ("kernel_size", REQ), ("stride", 1), ("pad", 0),
                 ("nobias", False), ("dtype", np.float32), ("in_channels", None)],
    "RNN": [("hidden_size", REQ), ("in_size", None)],
    "LSTM": [("hidden_size", REQ), ("in_size", None)],
    "GRU": [("hidden_size", REQ), ("in_size", None)],
    "EmbedID": [("in_size", REQ), ("out_size", REQ)],
    "BatchNorm": [],
    "LayerNorm": [],
    "Dropout": [],
    "Layer": [],
}  # fmt: skip
LAYER_METHODS = {
    "params": [], "cleargrads": [], "to_cpu": [], "to_gpu": [],
    "save_weights": [("path", REQ)], "load_weights": [("path", REQ)],
    "state_dict": [], "load_state_dict": [(None, REQ), ("strict", True)],
    "named_params": [], "forward": [], "__call__": [],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_signature(name):
    cls = getattr(L, name)
    assert issubclass(cls, L.Layer)
    check_signature(cls, LAYERS[name])


@pytest.mark.parametrize("name", sorted(LAYER_METHODS))
def test_layer_method(name):
    expected = LAYER_METHODS[name]
    meth = getattr(L.Layer, name)
    if name == "load_state_dict":  # first parameter's name is free (state / d)
        params = list(inspect.signature(meth).parameters.values())[1:]
        assert params[0].default is REQ
        assert params[1].name == "strict" and params[1].default is True
    elif name in ("forward", "__call__"):
        check_signature(meth, [], varargs="inputs", skip_self=True)
    else:
        check_signature(meth, expected, skip_self=True)


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_recurrent_layers_have_reset_state(name):
    check_signature(getattr(L, name).reset_state, [], skip_self=True)


def test_layers_module_offers_parameter():
    assert L.Parameter is dezero.Parameter


# =============================================================================
# dezero.models
# =============================================================================
def test_model_signatures():
    M = dezero.models
    check_signature(M.Model.plot, [], varargs="inputs", skip_self=True)
    assert inspect.signature(M.Model.plot).parameters["to_file"].default == "model.png"
    check_signature(M.Sequential, [], varargs="layers")
    check_signature(M.MLP, [("fc_output_sizes", REQ), ("activation", F.sigmoid)])
    check_signature(M.VGG16, [("pretrained", False)])
    check_signature(M.VGG16.preprocess, [("image", REQ), ("size", (224, 224)),
                                         ("dtype", np.float32)])  # fmt: skip
    assert isinstance(inspect.getattr_static(M.VGG16, "preprocess"), staticmethod)
    check_signature(M.ResNet, [("n_layers", 152), ("pretrained", False)])
    for name in ("ResNet50", "ResNet101", "ResNet152"):
        cls = getattr(M, name)
        assert issubclass(cls, M.ResNet)
        check_signature(cls, [("pretrained", False)])
    for name in ("Model", "Sequential", "MLP", "VGG16", "ResNet"):
        assert issubclass(getattr(M, name), M.Model)


def test_sequential_takes_any_callable_and_mlp_its_activation():
    M = dezero.models
    seq = M.Sequential(L.Linear(4), F.relu, lambda h: h * 2, L.Linear(2))
    y = seq(np.ones((3, 5), np.float32))
    assert y.shape == (3, 2) and len(list(seq.params())) == 4
    mlp = M.MLP((6, 2), activation=F.relu)
    assert mlp(np.ones((1, 3), np.float32)).shape == (1, 2)
    assert len(list(mlp.params())) == 4


# =============================================================================
# dezero.optimizers
# =============================================================================
OPTIMIZERS = {
    "SGD": [("lr", 0.01)],
    "MomentumSGD": [("lr", 0.01), ("momentum", 0.9)],
    "AdaGrad": [("lr", 0.001), ("eps", 1e-8)],
    "AdaDelta": [("rho", 0.95), ("eps", 1e-6)],
    "Adam": [("alpha", 0.001), ("beta1", 0.9), ("beta2", 0.999), ("eps", 1e-8)],
    "AdamW": [("alpha", 0.001), ("beta1", 0.9), ("beta2", 0.999), ("eps", 1e-8)],
    "WeightDecay": [("rate", REQ)],
    "ClipGrad": [("max_norm", REQ)],
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_signature(name):
    cls = getattr(dezero.optimizers, name)
    check_signature(cls, OPTIMIZERS[name])
    if name not in ("WeightDecay", "ClipGrad"):
        assert issubclass(cls, dezero.optimizers.Optimizer)


def test_optimizer_base_and_hooks():
    O = dezero.optimizers
    check_signature(O.FreezeParam, [], varargs="layers")
    check_signature(O.Optimizer.setup, [("target", REQ)], skip_self=True)
    check_signature(O.Optimizer.update, [], skip_self=True)
    check_signature(O.Optimizer.update_one, [("param", REQ)], skip_self=True)
    check_signature(O.Optimizer.add_hook, [("f", REQ)], skip_self=True)
    model = L.Linear(2, in_size=3)
    opt = O.SGD()
    assert opt.setup(model) is opt  # the book chains SGD(lr).setup(model)


# =============================================================================
# datasets, dataloaders, transforms
# =============================================================================
DATASETS = {
    "Dataset": [("train", True), ("transform", None), ("target_transform", None)],
    "Spiral": [("train", True)],
    "MNIST": [("train", True)],
    "CIFAR10": [("train", True)],
    "CIFAR100": [("train", True)],
    "SinCurve": [("train", True)],
    "Shakespear": [("train", True)],
}


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_dataset_signature(name):
    cls = getattr(dezero.datasets, name)
    assert issubclass(cls, dezero.datasets.Dataset)
    check_signature(cls, DATASETS[name])
    sig = inspect.signature(cls).parameters
    assert "transform" in sig and "target_transform" in sig
    assert sig["target_transform"].default is None


def test_dataset_protocol_and_book_helpers():
    D = dezero.datasets
    for name in ("prepare", "__getitem__", "__len__"):
        assert callable(getattr(D.Dataset, name))
    check_signature(D.get_spiral, [("train", True)])  # step 48 calls it


def test_dataloader_signatures():
    DL = dezero.dataloaders
    check_signature(DL.DataLoader, [("dataset", REQ), ("batch_size", REQ), ("shuffle", True),
                                    ("gpu", False)])  # fmt: skip
    check_signature(DL.SeqDataLoader, [("dataset", REQ), ("batch_size", REQ), ("gpu", False)])
    assert issubclass(DL.SeqDataLoader, DL.DataLoader)
    for name in ("reset", "next", "to_cpu", "to_gpu", "__iter__", "__next__"):
        assert callable(getattr(DL.DataLoader, name)), name


TRANSFORMS = {
    "Compose": [("transforms", None)],
    "Normalize": [("mean", 0), ("std", 1)],
    "Flatten": [],
    "AsType": [("dtype", np.float32)],
    "ToFloat": [("dtype", np.float32)],
    "ToInt": [],
    "Convert": [],
    "Resize": [("size", REQ)],
    "CenterCrop": [("size", REQ)],
    "ToArray": [],
    "ToPIL": [],
}


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_transform_signature(name):
    check_signature(getattr(dezero.transforms, name), TRANSFORMS[name])


# =============================================================================
# dezero.utils and dezero.cuda
# =============================================================================
UTILS = {
    "get_dot_graph": [("output", REQ), ("verbose", True)],
    "plot_dot_graph": [("output", REQ), ("verbose", True), ("to_file", "graph.png")],
    "numerical_grad": [("f", REQ), ("x", REQ)],
    "gradient_check": [("f", REQ), ("x", REQ)],
    "array_equal": [("a", REQ), ("b", REQ)],
    "array_allclose": [("a", REQ), ("b", REQ)],
    "sum_to": [("x", REQ), ("shape", REQ)],
    "reshape_sum_backward": [("gy", REQ), ("x_shape", REQ), ("axis", REQ), ("keepdims", REQ)],
    "logsumexp": [("x", REQ), ("axis", 1)],
    "get_conv_outsize": [("input_size", REQ), ("kernel_size", REQ), ("stride", REQ),
                         ("pad", REQ)],
    "get_deconv_outsize": [("size", REQ), ("k", REQ), ("s", REQ), ("p", REQ)],
    "pair": [("x", REQ)],
    "get_file": [("url", REQ), ("file_name", None)],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(UTILS))
def test_utils_signature(name):
    check_signature(getattr(dezero.utils, name), UTILS[name])


def test_utils_small_values_the_book_uses():
    U = dezero.utils
    assert isinstance(U.cache_dir, str) and U.cache_dir
    assert U.get_conv_outsize(4, 3, 1, 1) == 4  # step 55
    assert U.get_conv_outsize(7, 5, 1, 0) == 3
    assert U.get_deconv_outsize(3, 4, 2, 1) == 6
    assert U.pair(3) == (3, 3) and U.pair((2, 5)) == (2, 5)
    # numerical_grad/gradient_check take extra positional args after x, like the book's
    x = Variable(np.array([1.0, 2.0]))
    g = U.numerical_grad(lambda a, c: a * c, x, 3.0)
    np.testing.assert_allclose(g, [3.0, 3.0], rtol=1e-6)
    assert U.gradient_check(F.sin, np.array([0.3, 1.2])) is True
    assert U.array_equal(np.ones(2), Variable(np.ones(2)))
    assert U.array_allclose(np.ones(2), Variable(np.ones(2) + 1e-7))


def test_cuda_module():
    C = dezero.cuda
    assert isinstance(C.gpu_enable, bool)
    check_signature(C.get_array_module, [("x", REQ)])
    check_signature(C.as_numpy, [("x", REQ)])
    check_signature(C.as_cupy, [("x", REQ)])
    assert C.get_array_module(np.ones(2)) is np
    assert C.get_array_module(Variable(np.ones(2))) is np
    assert isinstance(C.as_numpy(Variable(np.ones(2))), np.ndarray)
    assert C.as_numpy(3.0) == np.array(3.0)


# =============================================================================
# Book compatibility modules and module hygiene
# =============================================================================
def test_core_simple_offers_the_stage_2_api():
    cs = dezero.core_simple
    for name in ("Variable", "Function", "Config", "using_config", "no_grad", "as_array",
                 "as_variable", "setup_variable", "add", "mul", "neg", "sub", "rsub", "div",
                 "rdiv", "pow"):  # fmt: skip
        assert hasattr(cs, name), f"dezero.core_simple.{name} is missing"
    check_signature(cs.Variable.backward, [("retain_grad", False)], skip_self=True)
    x = cs.Variable(np.array(3.0))
    y = x**2
    y.backward()
    assert isinstance(x.grad, np.ndarray) and x.grad == 6.0  # stage 2: ndarray gradients


@pytest.mark.parametrize(
    "module",
    [dezero.core, F, dezero.functions_conv, L, dezero.models, dezero.optimizers,
     dezero.datasets, dezero.dataloaders, dezero.transforms, dezero.utils, dezero.cuda],
    ids=lambda m: m.__name__,
)  # fmt: skip
def test_public_modules_declare_all_and_it_resolves(module):
    assert isinstance(module.__all__, (list, tuple)) and module.__all__
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"{module.__name__}.__all__ names missing attributes: {missing}"


def test_variable_rejects_other_types_with_the_type_name():
    with pytest.raises(TypeError, match="list"):
        Variable([1.0, 2.0])
    assert Variable(np.float32(2.0)).dtype == np.float32  # NEW: NumPy scalars accepted
    assert Variable(3).data.shape == ()


def test_layer_call_keeps_weak_references():
    layer = L.Linear(2, in_size=3)
    x = Variable(np.ones((1, 3), np.float32))
    y = layer(x)
    assert layer.inputs[0]() is x and layer.outputs[0]() is y


def test_batchnorm_running_statistics_are_not_parameters():
    bn = L.BatchNorm()
    bn(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32))
    names = [n for n, _ in bn.named_params()]
    assert sorted(names) == ["beta", "gamma"]
    assert len(bn.state_dict()) == 4  # gamma, beta and the two running statistics


# =============================================================================
# Beyond the book: introspection and dezero.func
# =============================================================================
def test_introspection_names_and_signatures():
    import dezero.func as func
    import dezero.profiler as profiler

    assert dezero.func is func and dezero.profiler is profiler
    assert issubclass(dezero.AnomalyError, Exception)
    assert dezero.detect_anomaly is dezero.anomaly.detect_anomaly
    check_signature(dezero.detect_anomaly, [])
    check_signature(Variable.register_hook, [("fn", REQ)], skip_self=True)
    check_signature(L.Layer.register_forward_hook, [("fn", REQ)], skip_self=True)
    check_signature(L.Layer.register_forward_pre_hook, [("fn", REQ)], skip_self=True)
    check_signature(L.Layer.train, [("mode", True)], skip_self=True)
    check_signature(L.Layer.eval, [], skip_self=True)
    assert L.Layer().training is True
    check_signature(dezero.models.Model.summary, [], varargs="inputs", skip_self=True)
    check_signature(profiler.profile, [])
    check_signature(profiler.Profile.table, [("sort_by", "total")], skip_self=True)
    check_signature(profiler.Profile.export_chrome_trace, [("path", REQ)], skip_self=True)
    for name in ("grad", "value_and_grad", "jacobian", "hessian"):
        check_signature(getattr(func, name), [("f", REQ), ("argnums", 0)])
    check_signature(func.vjp, [("f", REQ)], varargs="primals")
    check_signature(func.jvp, [("f", REQ), ("primals", REQ), ("tangents", REQ)])
    check_signature(func.hvp, [("f", REQ), ("primals", REQ), ("tangents", REQ)])


@pytest.mark.parametrize("name", ["anomaly", "func", "profiler"])
def test_introspection_modules_declare_all(name):
    module = getattr(dezero, name)
    assert module.__all__ and all(hasattr(module, n) for n in module.__all__)
