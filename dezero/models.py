"""dezero.models: Model (a Layer that can draw itself) and ready-made networks."""

from __future__ import annotations

import math
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
]


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

    def summary(self, *inputs) -> str:
        """Run one forward pass on ``inputs`` and return (and print) a table of the model.

        One row per layer (the model first, then every sub-layer by its path): its type,
        its output shape (``xN`` when it was called N times), the trainable parameters it
        holds itself and its buffers (BatchNorm's running statistics); then the totals
        (each shared Parameter once) and the memory the parameters and buffers take.

        The pass runs with no graph and in test mode, so it changes no running statistic;
        lazily created parameters are created by it, and the state of recurrent layers
        (``h``, ``c``) is put back as it was.

        >>> import numpy as np
        >>> model = MLP((10, 3))
        >>> table = model.summary(np.zeros((2, 4), dtype=np.float32))  # doctest: +ELLIPSIS
        Layer    Type    Output shape  Params  Buffers
        ...
        >>> print(table.splitlines()[-3])
        Trainable params: 83
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


def _summary(model: L.Layer, inputs) -> str:
    from dezero.core import Parameter, no_grad, test_mode

    rows = [("(model)", model), *model.named_layers()]
    layers = [layer for _, layer in rows]
    # recurrent state (h, c: Variables that are not Parameters) is put back afterwards
    state = []
    for layer in layers:
        members = set(layer._params) | set(layer._buffers)
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
            members = set(layer._params) | set(layer._buffers)
            for k, v in list(layer.__dict__.items()):
                if k in members or not isinstance(v, Variable) or isinstance(v, Parameter):
                    continue
                if k in before:
                    object.__setattr__(layer, k, before[k])
                else:
                    object.__delattr__(layer, k)

    def own(layer):
        params, buffers = 0, 0
        for name in layer._params:
            stack = [layer.__dict__.get(name)]
            while stack:
                v = stack.pop()
                if isinstance(v, Parameter) and v.data is not None:
                    params += v.size
                elif isinstance(v, (list, tuple)):
                    stack.extend(v)
        for name in layer._buffers:
            v = getattr(layer, name)
            if v is not None:
                buffers += v.size
        return params, buffers

    header = ("Layer", "Type", "Output shape", "Params", "Buffers")
    body = []
    for path, layer in rows:
        shape, calls = seen.get(id(layer), ("-", 0))
        if calls > 1:
            shape = f"{shape} x{calls}"
        n_params, n_buffers = own(layer)
        body.append((path, type(layer).__name__, shape, f"{n_params:,}", f"{n_buffers:,}"))
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
    return table


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
        caches = [L.KVCache(B) for _ in self.blocks] if use_cache else None
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


__all__ += ["GPT"]
