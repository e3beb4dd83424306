"""dezero.onnx: export a model to ONNX (extra ``onnx``: ``pip install "dezero-next[onnx]"``).

``export(model, args, path)`` runs the model once in test mode on ``args`` while the engine
reports every Function it applies (a ``dezero.core.FunctionHook``), also Functions of constants
only, which keep no graph (indexing into integer ids). The recorded calls, from the inputs
to the outputs, become ONNX nodes through one exporter per Function type
(``dezero.onnx._ops.EXPORTERS``); parameters and buffers become initializers named by
their path in the model (``'l1/W'``).

With ``dynamic_batch`` the first axis of the inputs and outputs is symbolic. To know which
sizes inside the graph follow the batch (a ``reshape(x, (x.shape[0], -1))``, the zero
initial state of an LSTM), the model is traced a second time with one more sample: a size
that changes with the batch is computed from the input's shape at run time.

This package is the only place that imports ``onnx`` (and ``onnxruntime``, to find the
newest opset it runs); importing it always works, ``export`` raises an ImportError naming
the extra when they are missing.
"""

from dezero.onnx._export import ExportError, export

__all__ = ["ExportError", "export"]
