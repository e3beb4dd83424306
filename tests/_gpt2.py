"""A tiny GPT-2 checkpoint in Hugging Face's layout, and GPT-2's forward pass in NumPy.

Written from the published architecture (Radford et al. 2019, and the layout of the files
that ``transformers`` saves), independently of dezero: the tests load what this writes and
compare dezero's logits with ``gpt2_forward``.
"""

import json
import math
from pathlib import Path

import numpy as np


def gpt2_weights(V=50, n_pos=16, n_layer=2, n_head=2, n_embd=8, tied=True, seed=0,
                 dtype=np.float32):
    """Random GPT-2 weights under GPT-2's tensor names (no ``transformer.`` prefix).

    Conv1D weights are (in, out); ``lm_head.weight`` (V, C) only when not tied. The scale
    (0.2) makes logits differ clearly between tokens.
    """
    rng = np.random.default_rng(seed)
    C = n_embd

    def r(*shape):
        return (rng.standard_normal(shape) * 0.2).astype(dtype)

    w = {"wte.weight": r(V, C), "wpe.weight": r(n_pos, C)}
    for i in range(n_layer):
        h = f"h.{i}."
        w.update({
            h + "ln_1.weight": 1 + r(C), h + "ln_1.bias": r(C),
            h + "attn.c_attn.weight": r(C, 3 * C), h + "attn.c_attn.bias": r(3 * C),
            h + "attn.c_proj.weight": r(C, C), h + "attn.c_proj.bias": r(C),
            h + "ln_2.weight": 1 + r(C), h + "ln_2.bias": r(C),
            h + "mlp.c_fc.weight": r(C, 4 * C), h + "mlp.c_fc.bias": r(4 * C),
            h + "mlp.c_proj.weight": r(4 * C, C), h + "mlp.c_proj.bias": r(C),
        })
    w.update({"ln_f.weight": 1 + r(C), "ln_f.bias": r(C)})
    if not tied:
        w["lm_head.weight"] = r(V, C)
    return w


def gpt2_config(V=50, n_pos=16, n_layer=2, n_head=2, n_embd=8, tied=True, **extra):
    config = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
              "vocab_size": V, "n_positions": n_pos, "n_ctx": n_pos, "n_embd": n_embd,
              "n_layer": n_layer, "n_head": n_head, "n_inner": None,
              "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
              "resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1,
              "tie_word_embeddings": tied, "bos_token_id": V - 1, "eos_token_id": V - 1}
    config.update(extra)
    return config


def write_checkpoint(folder, weights, config, prefix=True, mask_buffers=True):
    """Write config.json and model.safetensors the way the hub's GPT-2 files look."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, a in weights.items():
        key = "transformer." + name if prefix and name != "lm_head.weight" else name
        tensors[key] = a
    if mask_buffers:  # the causal-mask buffers older files carry
        n_pos = config["n_positions"]
        for i in range(config["n_layer"]):
            key = ("transformer." if prefix else "") + f"h.{i}.attn.bias"
            tensors[key] = np.tril(np.ones((n_pos, n_pos), np.float32))[None, None]
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _layer_norm(x, g, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def _gelu_new(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def gpt2_forward(w, ids, n_head, eps=1e-5):
    """GPT-2's logits (N, T, V) in float64 from the weights ``w`` (GPT-2's names)."""
    w = {k: np.asarray(v, dtype=np.float64) for k, v in w.items()}
    N, T = ids.shape
    x = w["wte.weight"][ids] + w["wpe.weight"][:T]
    n_layer = sum(1 for k in w if k.endswith("attn.c_attn.weight"))
    C = x.shape[-1]
    d = C // n_head
    for i in range(n_layer):
        p = f"h.{i}."
        h = _layer_norm(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps)
        qkv = h @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]
        q, k, v = (a.reshape(N, T, n_head, d).transpose(0, 2, 1, 3)
                   for a in np.split(qkv, 3, axis=-1))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d)
        scores = np.where(np.tril(np.ones((T, T), bool)), scores, -np.inf)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        att = scores / scores.sum(-1, keepdims=True)
        y = (att @ v).transpose(0, 2, 1, 3).reshape(N, T, C)
        x = x + y @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        h = _layer_norm(x, w[p + "ln_2.weight"], w[p + "ln_2.bias"], eps)
        m = _gelu_new(h @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"])
        x = x + m @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
    x = _layer_norm(x, w["ln_f.weight"], w["ln_f.bias"], eps)
    head = w.get("lm_head.weight", w["wte.weight"])
    return x @ head.T


def tiny_checkpoint(folder, tied=True, prefix=True, seed=0, **sizes):
    """Write a tiny checkpoint; return (weights, config)."""
    weights = gpt2_weights(tied=tied, seed=seed, **sizes)
    config = gpt2_config(tied=tied, **sizes)
    write_checkpoint(folder, weights, config, prefix=prefix)
    return weights, config


class Hub:
    """A thread serving ``{repo}/resolve/{revision}/{file}`` as the hub does (HEAD with the
    commit, ETag and size headers, GET with the bytes; 404 with X-Error-Code otherwise)."""

    def __init__(self, repos):
        import hashlib
        import http.server
        import threading

        files = {}
        for repo, folder in repos.items():
            for path in Path(folder).iterdir():
                data = path.read_bytes()
                etag = hashlib.sha256(data).hexdigest()
                files[f"/{repo}/resolve/main/{path.name}"] = (data, etag)
        self.requests = []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self, body):
                hub.requests.append((self.command, self.path))
                entry = files.get(self.path.split("?")[0])
                if entry is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data, etag = entry
                self.send_response(200)
                self.send_header("X-Repo-Commit", "0123456789abcdef0123456789abcdef01234567")
                self.send_header("ETag", f'"{etag}"')
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def do_HEAD(self):
                self._answer(False)

            def do_GET(self):
                self._answer(True)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# --- a small byte-level BPE vocabulary (GPT-2's 256 byte characters, a few merges) -------
def bytes_to_unicode():
    """GPT-2's table: every byte -> a printable character (letters stay themselves)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    table, n = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + n)
            n += 1
    return table


BYTE = bytes_to_unicode()
MERGES = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("Ġ", "a"), ("i", "n"), ("Ġ", "w"),
          ("o", "r"), ("Ġw", "or"), ("l", "d"), ("Ġwor", "ld"), ("e", "r"), ("Ġ", "Ġ"),
          ("1", "2"), ("'", "s"), ("Ã", "©")]
def write_vocab(folder):
    tokens = [BYTE[b] for b in range(256)] + ["".join(m) for m in MERGES] + ["<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in MERGES), encoding="utf-8")
    return vocab
