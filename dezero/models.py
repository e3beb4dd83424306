"""dezero.models: Model (a Layer that can draw itself) and ready-made networks."""

from __future__ import annotations

import math
import os
import re
from typing import Callable, Sequence

import numpy as np

import dezero.functions as F
import dezero.layers as L
from dezero import download, utils
from dezero.core import Variable

__all__ = [
    "MLP",
    "Model",
    "Sequential",
    "Summary",
]


class Summary(str):
    """What ``Model.summary`` returns: the table as a ``str``, and its numbers.

    ``str(summary)`` (and ``print(summary)``) is the table; ``repr`` is one line, so that a
    REPL that already printed the table does not show it a second time. ``rows`` is a list
    of dicts, one per row (the model first, then every sub-layer by its path): ``name``,
    ``type``, ``output_shape`` (a str; ``-`` when the layer was not called), ``params`` and
    ``buffers`` (ints: what the layer holds itself). ``trainable_params`` counts the
    parameters (each shared Parameter once), ``total_params`` the parameters and the buffers.
    """

    rows: list
    total_params: int
    trainable_params: int

    def __new__(cls, table: str, rows: list, total_params: int, trainable_params: int):
        self = super().__new__(cls, table)
        self.rows = rows
        self.total_params = total_params
        self.trainable_params = trainable_params
        return self

    def __repr__(self) -> str:
        return f"Summary({len(self.rows)} layers, {self.trainable_params:,} parameters)"


class Model(L.Layer):
    """A Layer meant as a whole network; adds ``plot``."""

    def plot(self, *inputs, to_file: str = "model.png"):
        """Run ``forward(*inputs)`` and draw the resulting graph to ``to_file`` (Graphviz).

        Raises RuntimeError when Graphviz ``dot`` is missing or fails (see
        ``dezero.utils.plot_dot_graph``).
        """
        y = self.forward(*inputs)
        if isinstance(y, tuple):
            y = y[0]
        return utils.plot_dot_graph(y, verbose=True, to_file=to_file)

    def summary(self, *inputs) -> Summary:
        """Run one forward pass on ``inputs``, print a table of the model and return it.

        One row per layer (the model first, then every sub-layer by its path): its type,
        its output shape (``xN`` when it was called N times), the trainable parameters it
        holds itself and its buffers (BatchNorm's running statistics); then the totals
        (each shared Parameter once) and the memory the parameters and buffers take.

        The pass runs with no graph and in test mode, so it changes no running statistic;
        lazily created parameters are created by it, and the state of recurrent layers
        (``h``, ``c``) is put back as it was. The table is printed once; the returned
        ``Summary`` is that table as a ``str`` with ``rows``, ``total_params`` and
        ``trainable_params``, and a one-line repr.

        >>> import numpy as np
        >>> model = MLP((10, 3))
        >>> table = model.summary(np.zeros((2, 4), dtype=np.float32))  # doctest: +ELLIPSIS
        Layer    Type    Output shape  Params  Buffers
        ...
        >>> print(table.splitlines()[-3])
        Trainable params: 83
        >>> table
        Summary(3 layers, 83 parameters)
        >>> table.rows[1]
        {'name': 'l0', 'type': 'Linear', 'output_shape': '(2, 10)', 'params': 50, 'buffers': 0}
        """
        return _summary(self, inputs)


def _shape_of(y) -> str:
    if isinstance(y, (tuple, list)):
        return "[" + ", ".join(_shape_of(v) for v in y) + "]"
    shape = getattr(y, "shape", None)
    return "-" if shape is None else str(tuple(shape))


def _nbytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return ""  # unreachable


def _summary(model: L.Layer, inputs) -> Summary:
    from dezero.core import Parameter, no_grad, test_mode

    rows = [("(model)", model), *model.named_layers()]
    layers = [layer for _, layer in rows]
    # recurrent state (h, c: Variables that are not Parameters) is put back afterwards
    state = []
    for layer in layers:
        members = set(layer.members())
        state.append({k: v for k, v in layer.__dict__.items()
                      if k not in members and (v is None or (isinstance(v, Variable)
                                                             and not isinstance(v, Parameter)))})
    seen: dict[int, list] = {}

    def record(layer, ins, out):
        entry = seen.setdefault(id(layer), [None, 0])
        entry[0] = _shape_of(out)
        entry[1] += 1

    handles = [layer.register_forward_hook(record) for layer in layers]
    try:
        with no_grad(), test_mode():
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
        for layer, before in zip(layers, state):
            members = set(layer.members())
            for k, v in list(layer.__dict__.items()):
                if k in members or not isinstance(v, Variable) or isinstance(v, Parameter):
                    continue
                if k in before:
                    object.__setattr__(layer, k, before[k])
                else:
                    object.__delattr__(layer, k)

    def own(layer):
        params = sum(p.size for p in layer.own_params() if p.data is not None)
        buffers = sum(v.size for _, v in layer.own_buffers() if v is not None)
        return params, buffers

    header = ("Layer", "Type", "Output shape", "Params", "Buffers")
    body = []
    records = []
    for path, layer in rows:
        shape, calls = seen.get(id(layer), ("-", 0))
        if calls > 1:
            shape = f"{shape} x{calls}"
        n_params, n_buffers = own(layer)
        body.append((path, type(layer).__name__, shape, f"{n_params:,}", f"{n_buffers:,}"))
        records.append({"name": path, "type": type(layer).__name__, "output_shape": shape,
                        "params": n_params, "buffers": n_buffers})
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(r):
        cells = [c.ljust(w) for c, w in zip(r[:3], widths[:3])]
        cells += [c.rjust(w) for c, w in zip(r[3:], widths[3:])]
        return "  ".join(cells).rstrip()

    params = [p for p in model.params() if p.data is not None]
    buffers = [v for _, v in model.named_buffers() if v is not None]
    n_params = sum(p.size for p in params)
    n_buffers = sum(v.size for v in buffers)
    p_bytes = sum(p.data.nbytes for p in params)
    b_bytes = sum(v.nbytes for v in buffers)
    width = len(line(header))
    out = [line(header), "=" * width, *[line(r) for r in body], "=" * width,
           f"Trainable params: {n_params:,}",
           f"Buffers (not trained): {n_buffers:,}",
           f"Parameter memory: {_nbytes(p_bytes + b_bytes)} "
           f"(params {_nbytes(p_bytes)}, buffers {_nbytes(b_bytes)})"]
    table = "\n".join(out)
    print(table)
    return Summary(table, records, n_params + n_buffers, n_params)


class Sequential(Model):
    """Apply ``layers`` one after another; any callable (layers, ``F.relu``...) may appear.

    The layers are registered by their position: parameter paths read like ``'layers/0/W'``.

    >>> import numpy as np
    >>> model = Sequential(L.Linear(4), F.relu, L.Linear(2))
    >>> model(np.zeros((3, 5), dtype=np.float32)).shape
    (3, 2)
    >>> [name for name, _ in model.named_params()]
    ['layers/0/W', 'layers/0/b', 'layers/2/W', 'layers/2/b']
    """

    def __init__(self, *layers: Callable):
        super().__init__()
        for i, layer in enumerate(layers):
            if not callable(layer):
                raise TypeError(
                    f"Sequential: item {i} is a {type(layer).__name__}, which is not callable"
                )
        self.layers = list(layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class MLP(Model):
    """Multi-layer perceptron: ``Linear`` layers of the given output sizes (lazy input size).

    ``activation`` is applied after every layer but the last. Layers are ``l0, l1, ...``.

    >>> import numpy as np
    >>> model = MLP((10, 3))
    >>> model(np.zeros((2, 4), dtype=np.float32)).shape
    (2, 3)
    """

    def __init__(self, fc_output_sizes: Sequence[int], activation: Callable = F.sigmoid,
                 dtype=np.float32):
        super().__init__()
        self.activation = activation
        self.layers = []
        for i, out_size in enumerate(fc_output_sizes):
            layer = L.Linear(out_size, dtype=dtype)
            setattr(self, "l" + str(i), layer)
            self.layers.append(layer)
        # the l0, l1... attributes hold the parameters; the list is only a convenience
        self._params.pop("layers", None)

    def forward(self, x) -> Variable:
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        return self.layers[-1](x)


# =============================================================================
# VGG16 and ResNet (the book's architectures; weights from the book's model files)
# =============================================================================
_WEIGHTS_BASE = "https://github.com/koki0702/dezero-models/releases/download/v0.1/"


def _load_pretrained(model: L.Layer, url: str) -> None:
    """Fetch ``url`` into the cache folder (once; see ``download.get_file``) and load it.

    Offline, get_file's error names the file and the folder to place it in by hand.
    """
    model.load_weights(download.get_file(url))


class VGG16(Model):
    """VGG-16 (Simonyan & Zisserman): 13 3x3 convolutions in 5 blocks, then 3 Linear layers.

    Every layer is created from its first input (lazy), so the network runs on any input of
    at least 32x32 pixels (fc6 takes what the five 2x2 poolings leave); the ImageNet weights
    (``pretrained=True``, downloaded once into the cache folder) expect 224x224 inputs made
    by :meth:`preprocess`. Dropout after fc6 and fc7 is active in training mode only.

    >>> model = VGG16()  # creates no weights yet: they follow the first input
    >>> [name for name, _ in model.named_params()][:3], len(list(model.params()))
    (['conv1_1/W', 'conv1_1/b', 'conv1_2/W'], 32)
    """

    WEIGHTS_PATH = _WEIGHTS_BASE + "vgg16.npz"

    def __init__(self, pretrained: bool = False):
        super().__init__()
        for block, (n_convs, channels) in enumerate(
                [(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)], start=1):
            for i in range(1, n_convs + 1):
                setattr(self, f"conv{block}_{i}", L.Conv2d(channels, kernel_size=3, stride=1,
                                                           pad=1))
        self.fc6 = L.Linear(4096)
        self.fc7 = L.Linear(4096)
        self.fc8 = L.Linear(1000)
        if pretrained:
            _load_pretrained(self, VGG16.WEIGHTS_PATH)

    def forward(self, x):
        for block, n_convs in enumerate((2, 2, 3, 3, 3), start=1):
            for i in range(1, n_convs + 1):
                x = F.relu(getattr(self, f"conv{block}_{i}")(x))
            x = F.pooling(x, 2, 2)
        x = F.reshape(x, (x.shape[0], -1))
        x = F.dropout(F.relu(self.fc6(x)))
        x = F.dropout(F.relu(self.fc7(x)))
        return self.fc8(x)

    @staticmethod
    def preprocess(image, size=(224, 224), dtype=np.float32):
        """A PIL image -> the (3, H, W) BGR array, minus the ImageNet channel means, that
        the pretrained weights expect.

        ``size`` is (width, height) as PIL takes it (None keeps the image's size).
        """
        image = image.convert("RGB")
        if size:
            image = image.resize(size)
        array = np.asarray(image, dtype=dtype)[:, :, ::-1]  # RGB -> BGR, as in Caffe
        array = array - np.array([103.939, 116.779, 123.68], dtype=dtype)
        return np.ascontiguousarray(array.transpose(2, 0, 1))


class BottleneckA(L.Layer):
    """First bottleneck of a ResNet stage: 1x1 -> 3x3 -> 1x1 convolutions plus a projection
    shortcut (1x1 conv with ``stride``), each followed by BatchNorm."""

    def __init__(self, in_channels, mid_channels, out_channels, stride=2,
                 downsample_fb=False):
        super().__init__()
        # downsample_fb: stride in the 3x3 conv (fb.torch) instead of the first 1x1 (Caffe)
        stride_1x1, stride_3x3 = (1, stride) if downsample_fb else (stride, 1)
        self.conv1 = L.Conv2d(mid_channels, 1, stride_1x1, 0, nobias=True)
        self.bn1 = L.BatchNorm()
        self.conv2 = L.Conv2d(mid_channels, 3, stride_3x3, 1, nobias=True)
        self.bn2 = L.BatchNorm()
        self.conv3 = L.Conv2d(out_channels, 1, 1, 0, nobias=True)
        self.bn3 = L.BatchNorm()
        self.conv4 = L.Conv2d(out_channels, 1, stride, 0, nobias=True)
        self.bn4 = L.BatchNorm()

    def forward(self, x):
        h1 = F.relu(self.bn1(self.conv1(x)))
        h1 = F.relu(self.bn2(self.conv2(h1)))
        h1 = self.bn3(self.conv3(h1))
        h2 = self.bn4(self.conv4(x))
        return F.relu(h1 + h2)


class BottleneckB(L.Layer):
    """Bottleneck with an identity shortcut: 1x1 -> 3x3 -> 1x1 convolutions (+ BatchNorm)."""

    def __init__(self, in_channels, mid_channels):
        super().__init__()
        self.conv1 = L.Conv2d(mid_channels, 1, 1, 0, nobias=True)
        self.bn1 = L.BatchNorm()
        self.conv2 = L.Conv2d(mid_channels, 3, 1, 1, nobias=True)
        self.bn2 = L.BatchNorm()
        self.conv3 = L.Conv2d(in_channels, 1, 1, 0, nobias=True)
        self.bn3 = L.BatchNorm()

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = F.relu(self.bn2(self.conv2(h)))
        h = self.bn3(self.conv3(h))
        return F.relu(h + x)


class BuildingBlock(L.Layer):
    """A ResNet stage: one BottleneckA (``a``) then ``n_layers - 1`` BottleneckB
    (``b1``, ``b2``, ...)."""

    def __init__(self, n_layers, in_channels, mid_channels, out_channels, stride,
                 downsample_fb=False):
        super().__init__()
        self.a = BottleneckA(in_channels, mid_channels, out_channels, stride, downsample_fb)
        self._forward = ["a"]
        for i in range(1, n_layers):
            setattr(self, f"b{i}", BottleneckB(out_channels, mid_channels))
            self._forward.append(f"b{i}")

    def forward(self, x):
        for name in self._forward:
            x = getattr(self, name)(x)
        return x


# bottlenecks per stage (res2..res5)
_RESNET_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


def _global_average_pooling_2d(x):
    N, C, H, W = x.shape
    return F.reshape(F.average_pooling(x, (H, W), stride=1), (N, C))


class ResNet(Model):
    """ResNet-50/101/152 (He et al.), the bottleneck version with BatchNorm.

    conv1 (7x7, stride 2) -> max pooling (3x3, stride 2) -> four stages (res2..res5) ->
    global average pooling -> fc6 (1000 classes). Layers are created from their first input
    (lazy). ``pretrained=True`` loads the ImageNet weights (downloaded once into the cache
    folder); they expect 224x224 images prepared like ``VGG16.preprocess``. BatchNorm uses
    batch statistics in training mode: use ``dezero.test_mode()`` for inference.

    >>> model = ResNet(50)  # creates no weights yet: they follow the first input
    >>> [name for name, _ in model.named_params()][:4]
    ['conv1/W', 'conv1/b', 'bn1/gamma', 'bn1/beta']
    >>> [name for name, _ in model.named_buffers()][:2]
    ['bn1/avg_mean', 'bn1/avg_var']
    """

    WEIGHTS_PATH = _WEIGHTS_BASE + "resnet{}.npz"

    def __init__(self, n_layers: int = 152, pretrained: bool = False):
        super().__init__()
        if n_layers not in _RESNET_BLOCKS:
            raise ValueError(
                f"ResNet: n_layers must be one of {sorted(_RESNET_BLOCKS)}, got {n_layers!r}"
            )
        self.n_layers = n_layers
        block = _RESNET_BLOCKS[n_layers]
        self.conv1 = L.Conv2d(64, 7, 2, 3)
        self.bn1 = L.BatchNorm()
        self.res2 = BuildingBlock(block[0], 64, 64, 256, 1)
        self.res3 = BuildingBlock(block[1], 256, 128, 512, 2)
        self.res4 = BuildingBlock(block[2], 512, 256, 1024, 2)
        self.res5 = BuildingBlock(block[3], 1024, 512, 2048, 2)
        self.fc6 = L.Linear(1000)
        if pretrained:
            _load_pretrained(self, ResNet.WEIGHTS_PATH.format(n_layers))

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.pooling(x, kernel_size=3, stride=2)
        x = self.res2(x)
        x = self.res3(x)
        x = self.res4(x)
        x = self.res5(x)
        x = _global_average_pooling_2d(x)
        return self.fc6(x)


class ResNet152(ResNet):
    """ResNet with 152 layers (stages of 3, 8, 36, 3 bottlenecks)."""

    def __init__(self, pretrained: bool = False):
        super().__init__(152, pretrained)


class ResNet101(ResNet):
    """ResNet with 101 layers (stages of 3, 4, 23, 3 bottlenecks)."""

    def __init__(self, pretrained: bool = False):
        super().__init__(101, pretrained)


class ResNet50(ResNet):
    """ResNet with 50 layers (stages of 3, 4, 6, 3 bottlenecks)."""

    def __init__(self, pretrained: bool = False):
        super().__init__(50, pretrained)


__all__ += ["VGG16", "ResNet", "ResNet50", "ResNet101", "ResNet152"]


# =============================================================================
# GPT
# =============================================================================
class GPT(Model):
    """A GPT-2-style decoder-only transformer (character or token level language model).

    ``GPT(vocab_size, block_size, n_layer=4, n_head=4, n_embd=128, dropout=0.0, *,
    tie_weights=False)``: token and position embeddings (``tok_emb``, ``pos_emb``),
    ``n_layer`` causal :class:`~dezero.layers.TransformerBlock` s (``blocks``), a final
    LayerNorm (``ln_f``) and a head without bias (``head``, C -> vocab_size). With
    ``tie_weights=True`` there is no ``head`` layer: the logits are ``h @ tok_emb.W.T``, one
    Parameter for both (GPT-2's layout; counted and saved once). Every other Linear has a
    bias.

    ``forward(ids)`` takes (N, T) integer ids with ``T <= block_size`` and returns the
    logits (N, T, vocab_size) of the next token at every position.

    Initialisation as GPT-2's: weights of the Linear layers and embeddings from
    N(0, 0.02^2), biases zero, LayerNorms (1, 0), and the projections that end each
    residual branch (``attn.proj`` and the MLP's ``proj``) with std ``0.02 / sqrt(2
    n_layer)``. Weights are drawn from NumPy's global generator (``np.random.seed``); inside
    :func:`dezero.layers.skip_init` nothing is drawn.

    Pretrained GPT-2 weights in Hugging Face's layout load with :meth:`from_pretrained` and
    save back with :meth:`save_pretrained`.

    >>> import numpy as np
    >>> np.random.seed(0)
    >>> model = GPT(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=16)
    >>> model(np.zeros((2, 8), dtype=np.int64)).shape
    (2, 8, 10)
    >>> model.generate(np.zeros((2, 1), dtype=np.int64), max_new_tokens=5, top_k=3).shape
    (2, 6)
    """

    def __init__(self, vocab_size: int, block_size: int, n_layer: int = 4, n_head: int = 4,
                 n_embd: int = 128, dropout: float = 0.0, *, tie_weights: bool = False):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("block_size", block_size),
                            ("n_layer", n_layer), ("n_head", n_head), ("n_embd", n_embd)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or (
                    value <= 0):
                raise ValueError(f"GPT: {name} must be a positive int, got {value!r}")
        if not isinstance(tie_weights, (bool, np.bool_)):
            raise TypeError(f"GPT: tie_weights must be a bool, got {tie_weights!r}")
        self.vocab_size = int(vocab_size)
        self.block_size = int(block_size)
        self.n_layer = int(n_layer)
        self.n_head = int(n_head)
        self.n_embd = int(n_embd)
        self.dropout = float(dropout)
        self.tie_weights = bool(tie_weights)
        self.pretrained_config: dict | None = None  # config.json of from_pretrained
        C = self.n_embd
        self.tok_emb = L.EmbedID(self.vocab_size, C)
        self.pos_emb = L.EmbedID(self.block_size, C)
        self.blocks = [L.TransformerBlock(C, self.n_head, causal=True, dropout=self.dropout)
                       for _ in range(self.n_layer)]
        self.ln_f = L.LayerNorm(C)
        self.head = None if self.tie_weights else L.Linear(self.vocab_size, nobias=True,
                                                           in_size=C)
        if not L.init_skipped():
            self._init_weights()

    def _init_weights(self) -> None:
        std = 0.02
        resid_std = std / np.sqrt(2 * self.n_layer)
        residual = set()
        for block in self.blocks:
            residual.add(id(block.attn.proj.W))
            residual.add(id(block.proj.W))
        for name, p in self.named_params():
            if p.ndim >= 2:  # Linear weights and embedding tables
                s = resid_std if id(p) in residual else std
                p.data = (np.random.randn(*p.shape) * s).astype(p.dtype)  # noqa: NPY002
            elif name.endswith("/b"):
                p.data = np.zeros_like(p.data)

    # --- forward ----------------------------------------------------------------------
    def forward(self, ids):
        # ids stay a Variable when they come as one: dezero.onnx traces them to the input
        if ids.ndim != 2:
            raise ValueError(f"GPT: expected ids of shape (N, T), got {tuple(ids.shape)}")
        n_tokens = ids.shape[1]
        if n_tokens > self.block_size:
            raise ValueError(
                f"GPT: the sequence has {n_tokens} tokens but block_size is {self.block_size}; "
                f"crop the context (generate() does) or build a model with a larger block_size"
            )
        return self._logits(self._hidden(ids))

    def _hidden(self, ids, caches=None):
        """The final LayerNorm's output (N, T, C); with ``caches`` (one KVCache per block)
        the ids are the positions after those the caches hold."""
        start = 0 if caches is None else len(caches[0])
        x = self.tok_emb(ids) + self.pos_emb.W[start:start + ids.shape[1]]
        x = F.dropout(x, self.dropout)
        if caches is None:
            for block in self.blocks:
                x = block(x)
        else:
            for block, cache in zip(self.blocks, caches):
                x = block(x, None, cache)
        return self.ln_f(x)

    def _logits(self, h):
        if self.head is None:  # tied: the token embedding read backwards
            return F.linear(h, F.transpose(self.tok_emb.W))
        return self.head(h)

    def param_groups(self, weight_decay: float) -> list[dict]:
        """Optimizer parameter groups, the AdamW convention: decay matrices only.

        Returns ``[{"params": [matrices...], "weight_decay": weight_decay},
        {"params": [biases, LayerNorm scales/shifts], "weight_decay": 0.0}]``, ready for
        ``AdamW(...).setup(model.param_groups(0.1))``. Embedding tables count as matrices.
        """
        params = list(self.named_params())
        return [
            {"params": {n: p for n, p in params if p.ndim >= 2},
             "weight_decay": weight_decay},
            {"params": {n: p for n, p in params if p.ndim < 2}, "weight_decay": 0.0},
        ]

    # --- generation ---------------------------------------------------------------------
    def generate(self, ids, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, use_cache: bool = True, eos_id: int | None = None):
        """Sample ``max_new_tokens`` ids after ``ids`` (N, T); returns (N, T + max_new_tokens).

        Runs in test mode without recording a graph. Each step takes the logits of the last
        position, divides them by ``temperature``, keeps only the ``top_k`` largest (when
        given; a ``top_k`` above ``vocab_size`` keeps them all, as nanoGPT and Hugging Face
        do) and samples from their softmax (NumPy's or CuPy's global generator);
        ``top_k=1`` is greedy decoding (the argmax, no random draw).

        The prompts of a batch have equal length (ids is one (N, T) array). The context is
        cropped to the last ``block_size`` ids. With ``use_cache`` (the default) every
        attention layer keeps its keys and values (:class:`dezero.layers.KVCache`) and each
        step feeds only the newest token; once the sequence outgrows ``block_size`` the
        caches are rebuilt from the cropped context at every step, so the tokens are those
        of ``use_cache=False`` (which recomputes the whole context every step). With
        ``eos_id``, a row that produced it stops: the rest of that row is ``eos_id`` (and
        generation ends early when every row has stopped).

        The output has the dtype of ``ids``, which must hold every id below
        ``vocab_size``.

        Raises:
            TypeError: ids that are not integers (or not an array).
            ValueError: ids of the wrong shape, empty, outside ``[0, vocab_size)`` or of a
                dtype too small for the vocabulary; a temperature that is not a finite
                number > 0; ``top_k`` not an int >= 1; ``eos_id`` out of
                range; ``max_new_tokens`` not an int >= 0; logits that are not finite.
        """
        from dezero import cuda
        from dezero.core import no_grad, test_mode

        ids = self._check_prompt(ids)
        max_new_tokens, temperature, top_k, eos_id = self._check_sampling(
            max_new_tokens, temperature, top_k, eos_id)
        if not isinstance(use_cache, (bool, np.bool_)):
            raise TypeError(f"generate: use_cache must be a bool, got {use_cache!r}")
        xp = cuda.get_array_module(ids)
        N, T0 = ids.shape
        B = self.block_size
        out = xp.empty((N, T0 + max_new_tokens), dtype=ids.dtype)
        out[:, :T0] = ids
        capacity = min(B, T0 + max_new_tokens)  # the most positions a cache will hold
        caches = [L.KVCache(capacity) for _ in self.blocks] if use_cache else None
        done = None if eos_id is None else xp.zeros(N, dtype=bool)
        with no_grad(), test_mode():
            for t in range(T0, T0 + max_new_tokens):
                if caches is None:
                    h = self._hidden(out[:, max(0, t - B):t])
                elif len(caches[0]) and len(caches[0]) < B:
                    h = self._hidden(out[:, t - 1:t], caches)  # the newest token only
                else:  # first step, or the context outgrew block_size: (re)build
                    for cache in caches:
                        cache.reset()
                    h = self._hidden(out[:, max(0, t - B):t], caches)
                logits = self._logits(h[:, -1]).data
                nxt = self._sample(xp, logits, temperature, top_k, t - T0)
                if done is not None:
                    nxt = xp.where(done, eos_id, nxt)
                    done |= nxt == eos_id
                out[:, t] = nxt
                if done is not None and bool(done.all()):
                    out[:, t + 1:] = eos_id
                    break
        return out

    # --- Hugging Face's layout ------------------------------------------------------------
    HUB_NAMES = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")

    @classmethod
    def from_pretrained(cls, name_or_path, *, cache_dir=None, dtype=np.float32) -> GPT:
        """Load GPT-2 weights in Hugging Face's layout; returns a model in eval mode.

        Parameters
        ----------
        name_or_path : str or os.PathLike
            A folder holding ``config.json`` and ``model.safetensors`` (or a sharded
            ``model.safetensors.index.json``), as ``transformers``' ``save_pretrained`` and
            :meth:`save_pretrained` write them; or one of ``"gpt2"``, ``"gpt2-medium"``,
            ``"gpt2-large"``, ``"gpt2-xl"`` (or another ``"owner/name"`` repository),
            fetched from the Hugging Face hub through ``huggingface_hub`` (extra ``hub``)
            into its usual cache, where ``transformers`` keeps its downloads too.
        cache_dir : str, optional
            ``huggingface_hub``'s cache folder for a hub name (default: its usual one).
        dtype : float dtype
            The parameters' dtype (float32 by default; float16 or float64 convert).

        Notes
        -----
        config.json's ``vocab_size``, ``n_positions`` (or ``n_ctx``), ``n_embd``,
        ``n_layer``, ``n_head``, ``layer_norm_epsilon``, ``tie_word_embeddings`` and
        ``resid_pdrop`` (the model's one dropout ratio) are honoured; a variant dezero does
        not implement (``n_inner`` other than 4 ``n_embd``, an activation other than the
        tanh GELU ``gelu_new``, ``scale_attn_by_inverse_layer_idx``,
        ``reorder_and_upcast_attn``, unscaled attention, cross-attention) is refused by name.

        Tensors are matched by GPT-2's names, with or without the ``transformer.`` prefix;
        the attention-mask buffers (``attn.bias``, ``attn.masked_bias``) are ignored. Every
        tensor is checked (names, shapes, dtypes, offsets inside the file) before the model
        exists: missing, unexpected or mis-shaped tensors are reported together, by name.

        No random weights are drawn (the model is built inside
        :func:`dezero.layers.skip_init`). The file is memory-mapped (copy on write) and the
        parameters are views of it: loading copies nothing, the pages are read when first
        used, and training writes private copies of the pages it changes. Other dtypes
        than the file's are converted tensor by tensor.

        Like ``transformers``, the model comes back in eval mode (dropout off); call
        ``model.train()`` before fine-tuning. ``model.pretrained_config`` keeps config.json.

        Raises
        ------
        FileNotFoundError
            A folder without config.json or model.safetensors (named), or a path that does
            not exist.
        CheckpointError
            A damaged, truncated or non-GPT-2 checkpoint (the message names the tensors).
        ValueError
            An unknown name, a config.json dezero cannot run (named field), a bad dtype.
        ImportError, dezero.download.OfflineError, dezero.download.DownloadError
            For a hub name: huggingface_hub missing (names the extra), no network and
            nothing cached (names the files and what to download by hand), no such file.
        """
        dtype = np.dtype(dtype)
        if dtype.kind != "f" or dtype.itemsize < 2:
            raise ValueError(f"GPT.from_pretrained: dtype must be float16, float32 or float64, "
                             f"got {dtype}")
        folder = _gpt2_folder(name_or_path, cache_dir, cls.HUB_NAMES)
        config = _read_json(os.path.join(folder, "config.json"))
        hp = _gpt2_hparams(config, os.path.join(folder, "config.json"))
        tensors = _gpt2_tensors(folder)
        with L.skip_init():
            model = cls(hp["vocab_size"], hp["block_size"], hp["n_layer"], hp["n_head"],
                        hp["n_embd"], hp["dropout"], tie_weights=hp["tie"])
        state = _gpt2_state(model, tensors, folder)  # checks everything, changes nothing
        for name, p in model.named_params():
            array = state[name]
            p.data = array if array.dtype == dtype else array.astype(dtype)
        for layer in [*(ln for b in model.blocks for ln in (b.ln1, b.ln2)), model.ln_f]:
            layer.eps = hp["eps"]
        model.pretrained_config = config
        return model.eval()

    def save_pretrained(self, folder) -> None:
        """Write ``config.json`` and ``model.safetensors`` in Hugging Face's GPT-2 layout.

        ``transformers.GPT2LMHeadModel.from_pretrained(folder)`` loads the result, as does
        :meth:`from_pretrained`. Tensor names carry the ``transformer.`` prefix, Linear
        weights are stored (in, out) as GPT-2's Conv1D keeps them, a tied head is stored
        once (as ``wte``), an untied one as ``lm_head.weight`` (vocab_size, n_embd); the
        file's metadata has ``"format": "pt"``, which transformers expects (and dezero's
        checksums, which :meth:`from_pretrained` verifies). config.json is
        the one the model was loaded with (if any), with this model's sizes. Both files are
        written atomically (a temporary file renamed over the target); the folder is
        created when missing. Parameters on the GPU are copied to the host.
        """
        import json

        from dezero import cuda
        from dezero.serialization import atomic_write, save_safetensors

        folder = os.fspath(folder)
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise NotADirectoryError(f"save_pretrained: {folder!r} is a file, not a folder")
        params = dict(self.named_params())
        missing = [n for n, p in params.items() if p.data is None]
        if missing:
            raise ValueError(f"save_pretrained: parameters not initialised yet: {missing}")
        os.makedirs(folder, exist_ok=True)
        tensors = {}
        for hf_name, name in _gpt2_names(self.n_layer, self.tie_weights).items():
            array = cuda.as_numpy(params[name].data)
            tensors["transformer." + hf_name if hf_name != "lm_head.weight" else hf_name] = (
                array.T if hf_name == "lm_head.weight" else array)
        dtypes = {str(a.dtype) for a in tensors.values()}
        config = dict(self.pretrained_config or {})
        config.update({
            "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
            "vocab_size": self.vocab_size, "n_positions": self.block_size,
            "n_ctx": self.block_size, "n_embd": self.n_embd, "n_layer": self.n_layer,
            "n_head": self.n_head, "n_inner": None, "activation_function": "gelu_new",
            "layer_norm_epsilon": float(self.ln_f.eps),
            "resid_pdrop": self.dropout, "embd_pdrop": self.dropout,
            "attn_pdrop": self.dropout, "tie_word_embeddings": self.tie_weights,
            "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
            "reorder_and_upcast_attn": False,
        })
        config.setdefault("initializer_range", 0.02)
        if len(dtypes) == 1:
            config["torch_dtype"] = dtypes.pop()
        save_safetensors(os.path.join(folder, "model.safetensors"), tensors,
                         metadata={"format": "pt"})
        with atomic_write(os.path.join(folder, "config.json")) as f:
            f.write((json.dumps(config, indent=2, sort_keys=True) + "\n").encode("utf-8"))

    @staticmethod
    def _sample(xp, logits, temperature, top_k, step):
        if not bool(xp.isfinite(logits).all()):
            raise ValueError(f"generate: the model produced non-finite logits (NaN or inf) at "
                             f"new token {step}; its weights may hold NaN or inf")
        if top_k == 1:
            return logits.argmax(axis=-1)
        logits = logits.astype(np.float64) / temperature
        V = logits.shape[-1]
        if top_k is not None and top_k < V:
            kth = xp.partition(logits, V - top_k, axis=-1)[:, V - top_k:V - top_k + 1]
            logits = xp.where(logits < kth, -xp.inf, logits)
        logits -= logits.max(axis=-1, keepdims=True)
        cdf = xp.cumsum(xp.exp(logits), axis=-1)
        u = xp.random.random_sample((logits.shape[0], 1)) * cdf[:, -1:]
        nxt = (cdf <= u).sum(axis=-1)  # inverse-CDF sampling, vectorised
        return xp.minimum(nxt, V - 1)

    def _check_prompt(self, ids):
        from dezero import cuda

        if isinstance(ids, Variable):
            ids = ids.data
        if isinstance(ids, (list, tuple)):
            ids = np.asarray(ids)
        if not isinstance(ids, cuda.array_types):
            raise TypeError(f"generate: ids must be an (N, T) array of token ids, got a "
                            f"{type(ids).__name__}")
        if ids.dtype.kind not in "iu":
            raise TypeError(f"generate: ids must be integers, got dtype {ids.dtype}")
        if ids.ndim != 2 or 0 in ids.shape:
            raise ValueError(f"generate: expected ids of shape (N, T) with N >= 1 prompts of "
                             f"T >= 1 tokens each, got shape {tuple(ids.shape)}")
        V = self.vocab_size
        if np.iinfo(ids.dtype).max < V - 1:
            raise ValueError(
                f"generate: ids of dtype {ids.dtype} cannot hold the ids this model samples "
                f"(up to {V - 1}, vocab_size {V}); pass int64 ids"
            )
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= V:
            bad = low if low < 0 else high
            raise ValueError(f"generate: ids must be in [0, vocab_size={V}), got {bad}")
        return ids

    def _check_sampling(self, max_new_tokens, temperature, top_k, eos_id):
        V = self.vocab_size

        def is_int(v):
            return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))

        if not is_int(max_new_tokens) or max_new_tokens < 0:
            raise ValueError(f"generate: max_new_tokens must be an int >= 0, got "
                             f"{max_new_tokens!r}")
        if (isinstance(temperature, (bool, np.bool_))
                or not isinstance(temperature, (int, float, np.integer, np.floating))
                or not math.isfinite(temperature) or temperature <= 0):
            raise ValueError(f"generate: temperature must be a finite number > 0, got "
                             f"{temperature!r}")
        if top_k is not None and (not is_int(top_k) or top_k < 1):
            raise ValueError(f"generate: top_k must be None or an int >= 1, got {top_k!r}")
        if eos_id is not None and (not is_int(eos_id) or not 0 <= eos_id < V):
            raise ValueError(f"generate: eos_id must be None or an id in [0, vocab_size={V}), "
                             f"got {eos_id!r}")
        return (int(max_new_tokens), float(temperature),
                None if top_k is None else int(top_k), None if eos_id is None else int(eos_id))


# =============================================================================
# GPT-2 checkpoints in Hugging Face's layout (GPT.from_pretrained / save_pretrained)
# =============================================================================
def _gpt2_names(n_layer: int, tied: bool) -> dict[str, str]:
    """GPT-2's tensor names (without the ``transformer.`` prefix) -> dezero's parameter
    paths. Linear weights have the same (in, out) orientation in both (GPT-2's Conv1D);
    ``lm_head.weight`` is (vocab, C), the transpose of ``head/W``."""
    names = {"wte.weight": "tok_emb/W", "wpe.weight": "pos_emb/W"}
    for i in range(n_layer):
        h, b = f"h.{i}.", f"blocks/{i}/"
        names.update({
            h + "ln_1.weight": b + "ln1/gamma", h + "ln_1.bias": b + "ln1/beta",
            h + "attn.c_attn.weight": b + "attn/qkv/W", h + "attn.c_attn.bias": b + "attn/qkv/b",
            h + "attn.c_proj.weight": b + "attn/proj/W", h + "attn.c_proj.bias": b + "attn/proj/b",
            h + "ln_2.weight": b + "ln2/gamma", h + "ln_2.bias": b + "ln2/beta",
            h + "mlp.c_fc.weight": b + "fc/W", h + "mlp.c_fc.bias": b + "fc/b",
            h + "mlp.c_proj.weight": b + "proj/W", h + "mlp.c_proj.bias": b + "proj/b",
        })
    names.update({"ln_f.weight": "ln_f/gamma", "ln_f.bias": "ln_f/beta"})
    if not tied:
        names["lm_head.weight"] = "head/W"
    return names


def _gpt2_folder(name_or_path, cache_dir, hub_names) -> str:
    """The local folder of ``name_or_path``: itself, or the hub snapshot of a name."""
    path = os.fspath(name_or_path)
    if os.path.isdir(path):
        return path
    if os.path.exists(path):
        raise NotADirectoryError(f"GPT.from_pretrained: {path!r} is a file; pass the folder "
                                 f"that holds config.json and model.safetensors")
    repo = path.replace(os.sep, "/")
    if repo in hub_names or (repo.count("/") == 1 and all(repo.split("/"))
                             and not path.startswith((".", "/", "~"))):
        files = download.hub_files(repo, ["config.json"], cache_dir=cache_dir)
        folder = os.path.dirname(files["config.json"])
        try:
            download.hub_files(repo, ["model.safetensors"], cache_dir=cache_dir)
        except download.NotOnHubError:  # large models may come in shards
            index = download.hub_files(repo, ["model.safetensors.index.json"],
                                       cache_dir=cache_dir)["model.safetensors.index.json"]
            shards = sorted(set(_read_json(index).get("weight_map", {}).values()))
            download.hub_files(repo, shards, cache_dir=cache_dir)
        return folder
    raise FileNotFoundError(
        f"GPT.from_pretrained: {path!r} is neither a folder nor a known model name; pass a "
        f"folder with config.json and model.safetensors, or one of {', '.join(hub_names)}"
    )


def _read_json(path) -> dict:
    import json

    if not os.path.exists(path):
        raise FileNotFoundError(f"{path!r} does not exist")
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise L.CheckpointError(f"{path!r} is not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise L.CheckpointError(f"{path!r} holds a {type(value).__name__}, not a JSON object")
    return value


# GPT2Config's defaults, used for keys a config.json leaves out (as transformers does)
_GPT2_DEFAULTS = {
    "vocab_size": 50257, "n_positions": 1024, "n_embd": 768, "n_layer": 12, "n_head": 12,
    "n_inner": None, "activation_function": "gelu_new", "resid_pdrop": 0.1,
    "layer_norm_epsilon": 1e-5, "tie_word_embeddings": True, "scale_attn_weights": True,
    "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False,
    "add_cross_attention": False,
}


def _gpt2_hparams(config: dict, where: str) -> dict:
    """Check config.json; return the GPT's sizes (every variant dezero lacks refused)."""
    def get(key):
        return config.get(key, _GPT2_DEFAULTS.get(key))

    model_type = config.get("model_type", "gpt2")
    if model_type != "gpt2":
        raise ValueError(f"{where}: model_type {model_type!r} is not GPT-2 ('gpt2')")
    hp = {}
    sizes = {"vocab_size": "vocab_size", "n_embd": "n_embd", "n_layer": "n_layer",
             "n_head": "n_head",
             "block_size": "n_positions" if "n_positions" in config or "n_ctx" not in config
             else "n_ctx"}
    for name, key in sizes.items():
        value = get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{where}: {key} must be a positive int, got {value!r}")
        hp[name] = value
    if hp["n_embd"] % hp["n_head"]:
        raise ValueError(f"{where}: n_embd ({hp['n_embd']}) is not a multiple of n_head "
                         f"({hp['n_head']})")
    unsupported = []
    n_inner = get("n_inner")
    if n_inner is not None and n_inner != 4 * hp["n_embd"]:
        unsupported.append(f"n_inner={n_inner!r} (dezero's MLP is 4 * n_embd = "
                           f"{4 * hp['n_embd']} wide)")
    act = get("activation_function")
    if act not in ("gelu_new", "gelu_pytorch_tanh"):
        unsupported.append(f"activation_function={act!r} (dezero's GPT uses the tanh GELU, "
                           f"'gelu_new')")
    for key, fine in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False),
                      ("reorder_and_upcast_attn", False), ("add_cross_attention", False)):
        if bool(get(key)) != fine:
            unsupported.append(f"{key}={get(key)!r}")
    if unsupported:
        raise ValueError(f"{where}: this GPT-2 variant is not implemented in dezero: "
                         + "; ".join(unsupported))
    eps, dropout = get("layer_norm_epsilon"), get("resid_pdrop")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
        raise ValueError(f"{where}: layer_norm_epsilon must be a number > 0, got {eps!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not (
            0 <= dropout < 1):
        raise ValueError(f"{where}: resid_pdrop must be a number in [0, 1), got {dropout!r}")
    tie = get("tie_word_embeddings")
    if not isinstance(tie, bool):
        raise ValueError(f"{where}: tie_word_embeddings must be true or false, got {tie!r}")
    hp.update(eps=float(eps), dropout=float(dropout), tie=tie)
    return hp


def _gpt2_tensors(folder) -> dict:
    """``{tensor name: its SafetensorsFile}`` for the folder's model.safetensors (or its
    shards), opened through copy-on-write memory maps (only the headers are read)."""
    from dezero.serialization import open_safetensors

    single = os.path.join(folder, "model.safetensors")
    if os.path.exists(single):
        f = open_safetensors(single, writable=True)
        return {name: f for name in f}
    index = os.path.join(folder, "model.safetensors.index.json")
    if not os.path.exists(index):
        others = [f for f in ("pytorch_model.bin", "tf_model.h5", "flax_model.msgpack")
                  if os.path.exists(os.path.join(folder, f))]
        also = f" (it has {', '.join(others)}: dezero reads only safetensors files, which " \
               f"hold no pickled code)" if others else ""
        raise FileNotFoundError(f"{folder!r} has no model.safetensors{also}")
    weight_map = _read_json(index).get("weight_map")
    if not isinstance(weight_map, dict):
        raise L.CheckpointError(f"{index!r} has no weight_map")
    tensors: dict = {}
    for shard in sorted(set(weight_map.values())):
        if not isinstance(shard, str) or os.path.basename(shard) != shard:
            raise L.CheckpointError(f"{index!r}: shard name {shard!r} is not a plain file name")
        f = open_safetensors(os.path.join(folder, shard), writable=True)
        for name in f:
            if weight_map.get(name) == shard:
                tensors[name] = f
    missing = sorted(set(weight_map) - set(tensors))
    if missing:
        raise L.CheckpointError(f"{index!r} lists tensors its shards lack: {missing[:10]}")
    return tensors


# GPT-2's causal-mask buffers (h.<i>.attn.bias, h.<i>.attn.masked_bias): not weights
_IGNORED = re.compile(r"h\.\d+\.attn\.(bias|masked_bias)")


def _gpt2_state(model: GPT, tensors: dict, where) -> dict:
    """Map GPT-2 tensors onto ``model``'s parameter paths: every name, shape and dtype is
    checked from the headers first; then the arrays (views of the maps) are taken."""
    table = _gpt2_names(model.n_layer, model.tie_weights)
    params = dict(model.named_params())
    plan, problems, unexpected, renamed, seen = {}, [], [], {}, set()
    for key, f in tensors.items():
        name = key[len("transformer."):] if key.startswith("transformer.") else key
        if name in renamed:
            problems.append(f"{key!r} and {renamed[name]!r} are the same tensor twice")
            continue
        renamed[name] = key
        if _IGNORED.fullmatch(name):
            continue
        shape = f.shape(key)
        if name == "lm_head.weight" and model.tie_weights:
            # some writers store the tied head too: it must at least fit
            if shape != (model.vocab_size, model.n_embd):
                problems.append(f"{key!r} has shape {shape}, expected "
                                f"{(model.vocab_size, model.n_embd)}")
            continue
        path = table.get(name)
        if path is None:
            unexpected.append(key)
            continue
        seen.add(name)
        if f.dtype(key).kind != "f":
            problems.append(f"{key!r} has dtype {f.dtype(key)}, not a float dtype")
            continue
        want = params[path].shape
        if name == "lm_head.weight":
            want = want[::-1]  # stored (vocab, C); head/W is its transpose
        if shape != want:
            problems.append(f"{key!r} has shape {shape}, the config needs {want}")
            continue
        plan[path] = (f, key, name == "lm_head.weight")
    missing = [hf for hf in table if hf not in seen]
    if missing:
        problems.append(f"missing tensors: {missing}")
    if unexpected:
        problems.append(f"unexpected tensors: {unexpected}")
    if problems:
        raise L.CheckpointError(f"cannot load {os.fspath(where)!r} into a GPT-2 of "
                                f"{model.n_layer} layers, n_embd {model.n_embd}, vocabulary "
                                f"{model.vocab_size}: " + "; ".join(problems))
    state = {}
    for path, (f, key, transpose) in plan.items():
        array = np.asarray(f[key])  # a plain ndarray view of the map (checksummed if dezero's)
        state[path] = array.T if transpose else array
    return state

__all__ += ["GPT"]
