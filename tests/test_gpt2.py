"""Pretrained GPT-2 in dezero: GPT.from_pretrained / save_pretrained in Hugging Face's layout.

The checkpoints are tiny ones the tests write themselves (tests/_gpt2.py); the logits are
checked against a NumPy forward pass of GPT-2 written from the published architecture.
"""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import dezero
from dezero.models import GPT
from dezero.serialization import CheckpointError
from tests._gpt2 import (
    Hub,
    gpt2_config,
    gpt2_forward,
    gpt2_weights,
    tiny_checkpoint,
    write_checkpoint,
)

pytest.importorskip("safetensors")  # the tests write their checkpoints with it

ROOT = Path(__file__).resolve().parent.parent
IDS = np.array([[1, 7, 3, 3, 0, 12], [49, 2, 8, 5, 5, 1]])


def _logits(model, ids=IDS):
    with dezero.no_grad():
        return model(ids).data


@pytest.mark.parametrize("tied, prefix", [(True, True), (True, False), (False, True)])
def test_logits_equal_gpt2_reference(tmp_path, tied, prefix):
    weights, config = tiny_checkpoint(tmp_path / "ckpt", tied=tied, prefix=prefix)
    state = np.random.get_state()[1].copy()  # noqa: NPY002
    model = GPT.from_pretrained(tmp_path / "ckpt")
    assert (np.random.get_state()[1] == state).all(), "no random weights are drawn"  # noqa: NPY002
    assert model.tie_weights is tied and model.training is False  # eval, as transformers
    assert (model.vocab_size, model.block_size, model.n_layer, model.n_head, model.n_embd) == (
        50, 16, 2, 2, 8)
    assert model.dropout == 0.1 and model.pretrained_config == config
    got = _logits(model)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, gpt2_forward(weights, IDS, n_head=2), rtol=1e-4, atol=1e-5)
    n = sum(p.size for p in model.params())
    assert n == sum(a.size for a in weights.values())


def test_config_epsilon_and_n_ctx_are_honoured(tmp_path):
    weights = gpt2_weights(n_pos=12)
    config = gpt2_config(n_pos=12, layer_norm_epsilon=0.5)
    del config["n_positions"]  # older files name the context n_ctx only
    write_checkpoint(tmp_path / "c", weights, config, mask_buffers=False)
    model = GPT.from_pretrained(str(tmp_path / "c"))
    assert model.block_size == 12 and model.ln_f.eps == 0.5 and model.blocks[1].ln2.eps == 0.5
    np.testing.assert_allclose(_logits(model), gpt2_forward(weights, IDS, 2, eps=0.5),
                               rtol=1e-4, atol=1e-5)


def test_parameters_are_copy_on_write_views_of_the_file(tmp_path):
    weights, _ = tiny_checkpoint(tmp_path / "c")
    before = (tmp_path / "c" / "model.safetensors").read_bytes()
    model = GPT.from_pretrained(tmp_path / "c")
    W = model.tok_emb.W.data
    assert not W.flags.owndata  # a view of the mapped file, no copy
    W += 1.0  # training writes its own copy of the pages, never the file
    model.blocks[0].fc.b.data[:] = 0
    assert (tmp_path / "c" / "model.safetensors").read_bytes() == before
    again = GPT.from_pretrained(tmp_path / "c")
    np.testing.assert_array_equal(again.tok_emb.W.data, weights["wte.weight"])


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_dtype_converts(tmp_path, dtype):
    weights, _ = tiny_checkpoint(tmp_path / "c")
    model = GPT.from_pretrained(tmp_path / "c", dtype=dtype)
    assert all(p.dtype == dtype for p in model.params())
    if dtype == np.float64:
        np.testing.assert_allclose(_logits(model), gpt2_forward(weights, IDS, 2), rtol=1e-6,
                                   atol=1e-6)
    with pytest.raises(ValueError, match="dtype must be float16, float32 or float64, got int32"):
        GPT.from_pretrained(tmp_path / "c", dtype=np.int32)


def test_float16_and_bfloat16_files_load(tmp_path):
    weights = gpt2_weights()
    half = {k: v.astype(np.float16) for k, v in weights.items()}
    write_checkpoint(tmp_path / "h", half, gpt2_config())
    model = GPT.from_pretrained(tmp_path / "h")
    assert model.tok_emb.W.dtype == np.float32
    np.testing.assert_allclose(_logits(model), gpt2_forward(half, IDS, 2), rtol=1e-4, atol=1e-4)
    # bfloat16: the upper halves of float32 (written by hand: NumPy has no bfloat16)
    folder = tmp_path / "b"
    folder.mkdir()
    bf = {k: (v.view(np.uint32) >> 16).astype(np.uint16) for k, v in weights.items()}
    header, offset, blobs = {"__metadata__": {"format": "pt"}}, 0, []
    for k, v in bf.items():
        header[k] = {"dtype": "BF16", "shape": list(v.shape),
                     "data_offsets": [offset, offset + v.nbytes]}
        offset += v.nbytes
        blobs.append(v.tobytes())
    h = json.dumps(header).encode()
    (folder / "model.safetensors").write_bytes(len(h).to_bytes(8, "little") + h + b"".join(blobs))
    (folder / "config.json").write_text(json.dumps(gpt2_config()))
    model = GPT.from_pretrained(folder)
    want = {k: (v.astype(np.uint32) << 16).view(np.float32) for k, v in bf.items()}
    np.testing.assert_array_equal(model.blocks[1].fc.W.data, want["h.1.mlp.c_fc.weight"])
    np.testing.assert_allclose(_logits(model), gpt2_forward(want, IDS, 2), rtol=1e-4, atol=1e-5)


def test_sharded_checkpoint_loads(tmp_path):
    from safetensors.numpy import save_file

    weights = gpt2_weights()
    folder = tmp_path / "s"
    folder.mkdir()
    names = list(weights)
    parts = {"model-00001-of-00002.safetensors": names[:10],
             "model-00002-of-00002.safetensors": names[10:]}
    for shard, keys in parts.items():
        save_file({"transformer." + k: weights[k] for k in keys}, str(folder / shard),
                  metadata={"format": "pt"})
    index = {"weight_map": {"transformer." + k: s for s, keys in parts.items() for k in keys}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    (folder / "config.json").write_text(json.dumps(gpt2_config()))
    model = GPT.from_pretrained(folder)
    np.testing.assert_allclose(_logits(model), gpt2_forward(weights, IDS, 2), rtol=1e-4,
                               atol=1e-5)


@pytest.mark.parametrize("tied", [True, False])
def test_save_pretrained_round_trip_is_exact(tmp_path, tied):
    np.random.seed(0)  # noqa: NPY002
    model = GPT(50, 16, n_layer=2, n_head=2, n_embd=8, dropout=0.1, tie_weights=tied)
    model.ln_f.eps = 1e-6
    for layer in (model.blocks[0].ln1, model.blocks[0].ln2, model.blocks[1].ln1,
                  model.blocks[1].ln2):
        layer.eps = 1e-6
    model.save_pretrained(tmp_path / "out")
    assert sorted(os.listdir(tmp_path / "out")) == ["config.json", "model.safetensors"]
    again = GPT.from_pretrained(tmp_path / "out")
    assert again.tie_weights is tied and again.dropout == 0.1 and again.ln_f.eps == 1e-6
    for (n1, p1), (n2, p2) in zip(model.named_params(), again.named_params()):
        assert n1 == n2
        np.testing.assert_array_equal(p1.data, p2.data)
    model.eval()
    np.testing.assert_array_equal(_logits(again), _logits(model))
    # and saving what was loaded gives the same files back
    again.save_pretrained(tmp_path / "out2")
    for name in ("config.json", "model.safetensors"):
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "out2" / name).read_bytes()


def test_save_pretrained_refuses_a_file_and_uninitialised_parameters(tmp_path):
    model = GPT(10, 4, n_layer=1, n_head=1, n_embd=4)
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        model.save_pretrained(tmp_path / "f")
    model.blocks[0].fc.W.data = None
    with pytest.raises(ValueError, match=r"not initialised yet: \['blocks/0/fc/W'\]"):
        model.save_pretrained(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_save_pretrained_writes_hugging_faces_layout(tmp_path):
    from safetensors import safe_open

    weights, config = tiny_checkpoint(tmp_path / "c", tied=False)
    config["task_specific_params"] = {"text-generation": {"max_length": 50}}
    (tmp_path / "c" / "config.json").write_text(json.dumps(config))
    model = GPT.from_pretrained(tmp_path / "c")
    model.save_pretrained(tmp_path / "out")
    with safe_open(str(tmp_path / "out" / "model.safetensors"), framework="numpy") as f:
        assert f.metadata()["format"] == "pt"
        keys = set(f.keys())
        assert keys == {("transformer." + k if k != "lm_head.weight" else k) for k in weights}
        for k, v in weights.items():
            key = "transformer." + k if k != "lm_head.weight" else k
            np.testing.assert_array_equal(f.get_tensor(key), v)
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert saved["task_specific_params"] == config["task_specific_params"]  # kept
    assert saved["tie_word_embeddings"] is False and saved["n_positions"] == 16
    assert saved["model_type"] == "gpt2" and saved["activation_function"] == "gelu_new"
    # a tied model stores its embedding once, without lm_head.weight
    tiny_checkpoint(tmp_path / "t", tied=True)
    GPT.from_pretrained(tmp_path / "t").save_pretrained(tmp_path / "t2")
    with safe_open(str(tmp_path / "t2" / "model.safetensors"), framework="numpy") as f:
        keys = list(f.keys())
        assert "lm_head.weight" not in keys and "transformer.wte.weight" in keys
        # the causal-mask buffers are not weights
        assert not any(re.fullmatch(r"transformer\.h\.\d+\.attn\.bias", k) for k in keys)


# --- errors: named, and nothing half-done --------------------------------------------------
def _broken(tmp_path, edit_weights=None, edit_config=None, tied=True):
    weights, config = gpt2_weights(tied=tied), gpt2_config(tied=tied)
    if edit_weights:
        edit_weights(weights)
    if edit_config:
        edit_config(config)
    folder = tmp_path / "broken"
    write_checkpoint(folder, weights, config)
    return folder


@pytest.mark.parametrize("edit, words", [
    (lambda w: w.pop("h.1.mlp.c_fc.bias"), r"missing tensors: \['h.1.mlp.c_fc.bias'\]"),
    (lambda w: w.update({"h.0.attn.extra": np.zeros(3, np.float32)}),
     r"unexpected tensors: \['transformer.h.0.attn.extra'\]"),
    (lambda w: w.update({"h.1.mlp.c_fc.weight": np.zeros((8, 30), np.float32)}),
     r"'transformer.h.1.mlp.c_fc.weight' has shape \(8, 30\), the config needs \(8, 32\)"),
    (lambda w: w.update({"wte.weight": np.zeros((50, 8), np.int32)}),
     "'transformer.wte.weight' has dtype int32, not a float dtype"),
    (lambda w: w.update({"h.2.ln_1.weight": np.ones(8, np.float32)}),
     r"unexpected tensors: \['transformer.h.2.ln_1.weight'\]"),
])
def test_wrong_tensors_are_named(tmp_path, edit, words):
    folder = _broken(tmp_path, edit_weights=edit)
    with pytest.raises(CheckpointError, match=words):
        GPT.from_pretrained(folder)


def test_all_problems_are_reported_together_and_the_untied_head_is_checked(tmp_path):
    def edit(w):
        w.pop("ln_f.bias")
        w["lm_head.weight"] = np.zeros((49, 8), np.float32)
    folder = _broken(tmp_path, edit_weights=edit, tied=False)
    with pytest.raises(CheckpointError) as info:
        GPT.from_pretrained(folder)
    message = str(info.value)
    assert "'lm_head.weight' has shape (49, 8), the config needs (50, 8)" in message
    assert "missing tensors: ['ln_f.bias']" in message and str(folder) in message


@pytest.mark.parametrize("edit, words", [
    (lambda c: c.update(n_inner=100), "n_inner=100"),
    (lambda c: c.update(activation_function="relu"), "activation_function='relu'"),
    (lambda c: c.update(scale_attn_by_inverse_layer_idx=True),
     "scale_attn_by_inverse_layer_idx=True"),
    (lambda c: c.update(reorder_and_upcast_attn=True), "reorder_and_upcast_attn=True"),
    (lambda c: c.update(scale_attn_weights=False), "scale_attn_weights=False"),
    (lambda c: c.update(add_cross_attention=True), "add_cross_attention=True"),
    (lambda c: c.update(model_type="llama"), "model_type 'llama' is not GPT-2"),
    (lambda c: c.update(n_head=3), r"n_embd \(8\) is not a multiple of n_head \(3\)"),
    (lambda c: c.update(n_layer=0), "n_layer must be a positive int, got 0"),
    (lambda c: c.update(vocab_size="50"), "vocab_size must be a positive int, got '50'"),
    (lambda c: c.update(layer_norm_epsilon=-1), "layer_norm_epsilon must be a number > 0"),
])
def test_unsupported_configs_are_refused_by_name(tmp_path, edit, words):
    folder = _broken(tmp_path, edit_config=edit)
    with pytest.raises(ValueError, match=words) as info:
        GPT.from_pretrained(folder)
    assert "config.json" in str(info.value)


def test_n_inner_of_4c_and_the_pytorch_tanh_gelu_are_fine(tmp_path):
    folder = _broken(tmp_path, edit_config=lambda c: c.update(
        n_inner=32, activation_function="gelu_pytorch_tanh"))
    assert GPT.from_pretrained(folder).n_embd == 8


def test_damaged_files_are_named(tmp_path):
    tiny_checkpoint(tmp_path / "c")
    path = tmp_path / "c" / "model.safetensors"
    data = path.read_bytes()
    damaged = "model.safetensors': the file is truncated, corrupted or not a .safetensors file"
    path.write_bytes(data[:-10])
    with pytest.raises(CheckpointError, match=damaged + r".*describes \d+ bytes of data"):
        GPT.from_pretrained(tmp_path / "c")
    for cut in (data[:20], b"\x05"):
        path.write_bytes(cut)
        with pytest.raises(CheckpointError, match=damaged):
            GPT.from_pretrained(tmp_path / "c")
    n = int.from_bytes(data[:8], "little")
    path.write_bytes(data[:8] + b"[" + data[9:8 + n] + data[8 + n:])
    with pytest.raises(CheckpointError, match=damaged):
        GPT.from_pretrained(tmp_path / "c")
    (tmp_path / "c" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"config\.json' is not valid JSON"):
        GPT.from_pretrained(tmp_path / "c")


def test_a_corrupted_save_pretrained_file_is_caught_by_its_checksum(tmp_path):
    model = GPT(50, 16, n_layer=2, n_head=2, n_embd=8)
    model.save_pretrained(tmp_path / "out")
    path = tmp_path / "out" / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # one flipped byte in the last tensor's data
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum mismatch for tensor"):
        GPT.from_pretrained(tmp_path / "out")


def test_missing_files_and_unknown_names(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    with pytest.raises(FileNotFoundError, match=r"config\.json' does not exist"):
        GPT.from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps(gpt2_config()))
    (folder / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(FileNotFoundError, match=r"safetensors \(it has pytorch_model\.bin"):
        GPT.from_pretrained(folder)
    with pytest.raises(FileNotFoundError, match="neither a folder nor a known model name"):
        GPT.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="gpt2, gpt2-medium, gpt2-large, gpt2-xl"):
        GPT.from_pretrained("gpt5")
    with pytest.raises(NotADirectoryError, match="is a file; pass the folder"):
        GPT.from_pretrained(folder / "config.json")


# --- memory: a load maps the file, it does not copy it --------------------------------------
_RSS = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    import dezero
    from dezero.models import GPT

    def rss():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(("VmRSS", "VmHWM")):
                    yield int(line.split()[1]) * 1024

    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the peak (VmHWM) to the current RSS
    base, _ = rss()
    model = GPT.from_pretrained(sys.argv[1])
    total = sum(float(p.data.sum(dtype=np.float64)) for p in model.params())  # read it all
    with dezero.no_grad():
        model(np.zeros((1, 4), dtype=np.int64))
    now, peak = rss()
    print(base, peak, now, total)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")
def test_peak_memory_of_a_load_stays_within_a_quarter_above_the_file(tmp_path):
    sizes = {"V": 4000, "n_pos": 64, "n_layer": 8, "n_head": 4, "n_embd": 256}
    tiny_checkpoint(tmp_path / "m", **sizes)
    size = (tmp_path / "m" / "model.safetensors").stat().st_size
    assert size > 25e6
    out = subprocess.run([sys.executable, "-c", _RSS, str(tmp_path / "m")], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, check=True)
    base, peak, _now, _ = (float(v) for v in out.stdout.split())
    assert peak - base <= 1.25 * size, (peak - base) / size


# --- the hub: a local server with the hub's URL layout ---------------------------------------
def test_a_hub_name_downloads_into_the_hub_cache_and_works_offline_after(tmp_path, monkeypatch):
    pytest.importorskip("huggingface_hub")
    from dezero.download import OfflineError

    weights, _ = tiny_checkpoint(tmp_path / "files")
    hub = Hub({"gpt2": tmp_path / "files"})
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    cache = tmp_path / "hub-cache"
    try:
        model = GPT.from_pretrained("gpt2", cache_dir=cache)
        assert ("GET", "/gpt2/resolve/main/model.safetensors") in hub.requests
    finally:
        hub.close()
    np.testing.assert_allclose(_logits(model), gpt2_forward(weights, IDS, 2), rtol=1e-4,
                               atol=1e-5)
    # huggingface_hub's cache layout, where transformers finds the same files
    snapshot = cache / "models--gpt2" / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    assert (snapshot / "model.safetensors").exists() and (snapshot / "config.json").exists()
    # the server is gone: the cached files are used
    again = GPT.from_pretrained("gpt2", cache_dir=cache)
    np.testing.assert_array_equal(_logits(again), _logits(model))
    # nothing cached and offline: the error names the files and what to do (offline mode
    # rather than a dead server: huggingface_hub would retry for 20 s first)
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(OfflineError) as info:
        GPT.from_pretrained("gpt2-medium", cache_dir=tmp_path / "other")
    message = str(info.value)
    assert f"{hub.url}/gpt2-medium/resolve/main/config.json" in message
    assert "into one folder and pass that folder's path" in message


def test_a_missing_hub_file_is_named(tmp_path, monkeypatch):
    pytest.importorskip("huggingface_hub")
    from dezero.download import NotOnHubError

    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "config.json").write_text(json.dumps(gpt2_config()))
    hub = Hub({"gpt2": tmp_path / "files"})
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        with pytest.raises(NotOnHubError, match=r"has no file 'model\.safetensors\.index\.json'"):
            GPT.from_pretrained("gpt2", cache_dir=tmp_path / "cache")
    finally:
        hub.close()


def test_without_huggingface_hub_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails
    with pytest.raises(ImportError, match=r'pip install "dezero-next\[hub\]"'):
        GPT.from_pretrained("gpt2", cache_dir=tmp_path)
