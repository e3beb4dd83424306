"""The tools on the engine's protocol: func, hooks, anomaly, profiler, onnx, jit."""

import numpy as np

import dezero.functions as F
import dezero.layers as L
from dezero import Variable, func, hooks, optimizers, profiler
from dezero.anomaly import AnomalyError, detect_anomaly
from dezero.jit import CaptureError, jit
from dezero.models import MLP, Model
from tests.errdb.base import rows


def _two(x, y):
    return (x * y).sum()


def _vars(ctx):
    ctx.x = Variable(np.array([1.0, 2.0]))
    ctx.y = Variable(np.array([3.0, 4.0]))
    (ctx.x * ctx.y).sum().backward()  # gradients that a refused call must leave alone


def _backward_with(ctx, hook):
    ctx.x.register_hook(hook)
    (ctx.x * 2).sum().backward()


def _anomalous(fn):
    with detect_anomaly():
        fn()


def _profiled(ctx):
    with profiler.profile() as prof:
        F.sin(Variable(np.ones(3)))
    ctx.prof = prof


class _Branchy(Model):
    def __init__(self):
        super().__init__()
        self.l = L.Linear(3, in_size=4)

    def forward(self, x):
        y = self.l(x)
        if float(y.sum()) > 0:  # a branch the exported graph would freeze
            return y * 2
        return y


def _onnx_model(ctx):
    np.random.seed(0)  # noqa: NPY002  (dezero draws initial weights from it)
    ctx.mlp = MLP((5, 3))
    ctx.mlp(np.zeros((1, 4), np.float32))
    ctx.branchy = _Branchy()


def _export(*args, **kwargs):
    from dezero import onnx

    return onnx.export(*args, **kwargs)


def _step(ctx):
    np.random.seed(0)  # noqa: NPY002  (dezero draws initial weights from it)
    model = ctx.model = MLP((8, 3))
    opt = ctx.opt = optimizers.SGD(0.1).setup(model)
    ctx.x, ctx.t = np.ones((4, 5), np.float32), np.array([0, 1, 2, 0])
    model(ctx.x)

    def reads_float(x, t):
        loss = F.softmax_cross_entropy(model(x), t)
        if float(loss) > 100:  # a decision in Python: frozen at the first call
            loss = loss * 0.5
        model.cleargrads()
        loss.backward()
        opt.update()
        return loss

    def reads_item(x, t):
        loss = F.softmax_cross_entropy(model(x), t)
        return loss.item()

    ctx.reads_float, ctx.reads_item = jit(reads_float), jit(reads_item)


ENTRIES = [
    *rows("func.grad", _vars,
          argnums_twice=(lambda c: func.grad(_two, argnums=(0, 0))(c.x, c.y), ValueError,
                         "argnums=(0, 0) names argument 0 twice"),
          argnums_beyond=(lambda c: func.grad(_two, argnums=2)(c.x, c.y), ValueError,
                          "argnums=2 does not name one of the 2 positional argument(s)"),
          argnums_float=(lambda c: func.grad(_two, argnums=0.5)(c.x, c.y), TypeError,
                         "argnums must be an int or a tuple of ints"),
          returns_none=(lambda c: func.grad(lambda x: None)(c.x), TypeError,
                        "f returned None"),
          returns_text=(lambda c: func.grad(lambda x: "loss")(c.x), TypeError,
                        "f must return a number, a Variable or an array"),
          vector=(lambda c: func.grad(lambda x: x * 2)(c.x), ValueError,
                  "f must return a single value (size 1), got shape (2,)"),
          pair=(lambda c: func.grad(lambda x: (x.sum(), x.sum()))(c.x), TypeError,
                "f must return one Variable or array, not a tuple")),
    *rows("func.value_and_grad", _vars,
          empty=(lambda c: func.value_and_grad(_two, argnums=())(c.x, c.y), ValueError,
                 "argnums must name at least one argument")),
    *rows("func.jacobian", _vars,
          twice=(lambda c: func.jacobian(_two, argnums=(1, -1))(c.x, c.y), ValueError,
                 "names argument 1 twice")),
    *rows("func.hessian", _vars,
          vector=(lambda c: func.hessian(lambda x: x * x)(c.x), ValueError,
                  "f must return a single value")),
    *rows("func.vjp", _vars,
          cotangent=(lambda c: func.vjp(lambda x: x * 2, c.x)[1](np.ones(3)), ValueError,
                     "the cotangent has shape (3,), f's output (2,)")),
    *rows("func.jvp", _vars,
          counts=(lambda c: func.jvp(_two, (c.x, c.y), (np.ones(2),)), ValueError,
                  "2 primal(s) but 1 tangent(s)"),
          shape=(lambda c: func.jvp(lambda x: x.sum(), (c.x,), (np.ones(3),)), ValueError,
                 "a tangent has shape (3,), its primal (2,)")),
    *rows("func.hvp", _vars,
          counts=(lambda c: func.hvp(_two, (c.x, c.y), (np.ones(2),)), ValueError,
                  "2 primal(s) but 1 tangent(s)")),
    # --- hooks --------------------------------------------------------------------
    *rows("hooks.register_variable_hook", _vars,
          not_callable=(lambda c: hooks.register_variable_hook(c.x, 3), TypeError,
                        "register_hook takes a callable, not int"),
          wrong_shape=(lambda c: _backward_with(c, lambda g: np.zeros(3)), ValueError,
                       "returned a gradient of shape (3,)")),
    # --- anomaly ------------------------------------------------------------------
    *rows("anomaly.detect_anomaly", _vars,
          nan_forward=(lambda c: _anomalous(lambda: F.log(c.x - 5.0)), AnomalyError,
                       "Log", "forward"),
          nan_backward=(lambda c: _anomalous(lambda: F.sqrt(c.x - 1.0).sum().backward()),
                        AnomalyError, "backward")),
    # --- profiler -----------------------------------------------------------------
    *rows("profiler.Profile.table", _profiled,
          sort_by=(lambda c: c.prof.table(sort_by="time"), ValueError, "sort_by must be one of"),
          limit=(lambda c: c.prof.table(limit=-1), ValueError, "limit must be None or an int")),
    *rows("profiler.Profile.export_chrome_trace", _profiled,
          no_folder=(lambda c: c.prof.export_chrome_trace(c.tmp / "no" / "t.json"),
                     FileNotFoundError, "does not exist")),
    *rows("profiler.profile",
          sync=(lambda c: profiler.profile(sync_gpu="yes"), TypeError,
                "sync_gpu must be True or False")),
    # --- onnx ---------------------------------------------------------------------
    *rows("onnx.export", _onnx_model, needs=("onnx",),
          value_read=(lambda c: _export(c.branchy, np.ones((2, 4), np.float32), None),
                      Exception, "float() reads the value of a Variable", "while the model is "
                      "traced"),
          bad_flag=(lambda c: _export(c.mlp, np.ones((2, 4), np.float32), None,
                                      value_reads="ignore"), ValueError,
                    "value_reads must be 'error' or 'warn'"),
          scalar=(lambda c: _export(c.mlp, np.float32(1), None), ValueError,
                  "input 0 is 0-d and has no batch axis"),
          old_opset=(lambda c: _export(c.mlp, np.ones((2, 4), np.float32), None, opset=9),
                     ValueError, "exports opset 18 or newer"),
          no_exporter=(lambda c: _export(lambda x: F.softmax_cross_entropy(x, np.array([0, 1])),
                                         np.ones((2, 4), np.float32), None,
                                         dynamic_batch=False),
                       Exception, "cannot export SoftmaxCrossEntropy"),
          not_a_variable=(lambda c: _export(lambda x: 3, np.ones((2, 4), np.float32), None),
                          Exception, "the model returned a int"),
          no_folder=(lambda c: _export(c.mlp, np.ones((2, 4), np.float32),
                                       c.tmp / "no" / "m.onnx"), FileNotFoundError,
                     "does not exist")),
    # --- jit ----------------------------------------------------------------------
    *rows("jit.jit", _step,
          not_callable=(lambda c: jit(3), TypeError, "jit takes a callable, not int"),
          cache=(lambda c: jit(print, max_cache=0), ValueError, "max_cache must be at least 1"),
          check=(lambda c: jit(print, check="yes"), TypeError,
                 "check must be True or False"),
          gpu_graph=(lambda c: jit(print, gpu_graph=1), TypeError,
                     "gpu_graph must be True or False"),
          float_read=(lambda c: c.reads_float(c.x, c.t), CaptureError,
                      "float() reads the value of the output of SoftmaxCrossEntropy",
                      "inside a dezero.jit step"),
          item_read=(lambda c: c.reads_item(c.x, c.t), CaptureError,
                     "item() reads the value")),
]


_OBSERVER = "an event the engine sends to observers (the protocol); not called by users"
EXEMPT = {
    "hooks.FunctionHook": "the observer base class: takes no argument",
    **{f"hooks.FunctionHook.{m}": _OBSERVER for m in (
        "forward_pre", "forward_post", "backward_pre", "backward_post", "accumulate",
        "cleargrad", "update_pre", "update_post", "value_read")},
    "hooks.HookHandle": "made by register_hook & co. (see hooks.register_variable_hook)",
    "hooks.HookHandle.functions": "reads a hook list; takes the handle's own registry",
    "hooks.HookHandle.remove": "idempotent: a second remove() does nothing, and never removes "
                               "another handle's registration (tests/test_api_faults.py)",
    "hooks.has_variable_hooks": "a question about any object; cannot fail",
    "hooks.installed": "takes no argument",
    "hooks.run_variable_hooks": "the engine's call; a hook's wrong gradient: see "
                                "hooks.register_variable_hook:wrong_shape",
    "anomaly.AnomalyError": "an exception type",
    "profiler.Event": "a NamedTuple of recorded values",
    "profiler.Profile": "made by profile() (see profiler.profile)",
    **{f"profiler.Profile.{m}": _OBSERVER for m in (
        "forward_pre", "forward_post", "backward_pre", "backward_post", "update_pre",
        "update_post")},
    "profiler.Profile.summary": "takes no argument",
    "onnx.ExportError": "an exception type",
    "jit.CaptureError": "an exception type",
    "jit.JitCheckError": "an exception type",
    "jit.active_recorder": "takes no argument (what the optimizers ask while a step is "
                           "recorded)",
}
