"""dezero.models.GPT: parameter count, initialisation, generate, overfitting a short text,
weight decay on matrices only through optimizer parameter groups, and the example."""

import math
import os

import numpy as np
import pytest

import dezero
import dezero.functions as F
from dezero import Variable, optimizers
from dezero.models import GPT
from tests._examples import load_example, tiny_shakespeare


def _count(V, B, L, C):
    per_block = 12 * C * C + 13 * C  # qkv, attention proj, 4C MLP, two LayerNorms
    return V * C + B * C + L * per_block + 2 * C + C * V


def test_parameter_count_equals_the_formula():
    for V, B, L, H, C in [(65, 64, 4, 4, 128), (10, 8, 1, 2, 16), (7, 5, 3, 3, 12)]:
        model = GPT(V, B, L, H, C)
        assert sum(p.size for p in model.params()) == _count(V, B, L, C)
    model = GPT(65, 64)  # the defaults are the baby config
    assert (model.n_layer, model.n_head, model.n_embd) == (4, 4, 128)
    assert model.head.b is None and model.head.W.shape == (128, 65)


def test_gpt2_initialisation():
    np.random.seed(0)  # noqa: NPY002
    model = GPT(50, 64, n_layer=8, n_head=4, n_embd=128)
    resid = 0.02 / math.sqrt(2 * 8)
    for name, p in model.named_params():
        assert p.dtype == np.float32, name
        if name.endswith("attn/proj/W") or name.endswith("/proj/W"):
            assert abs(p.data.std() - resid) < 0.1 * resid, name
        elif p.ndim == 2:
            assert abs(p.data.std() - 0.02) < 0.1 * 0.02, name
        elif name.endswith("gamma"):
            np.testing.assert_array_equal(p.data, 1.0)
        else:  # biases and LayerNorm shifts
            np.testing.assert_array_equal(p.data, 0.0)


def test_forward_shapes_dtype_and_errors():
    model = GPT(11, 8, n_layer=1, n_head=2, n_embd=8)
    ids = np.random.default_rng(0).integers(0, 11, size=(3, 5))
    logits = model(ids)
    assert logits.shape == (3, 5, 11) and logits.dtype == np.float32
    with pytest.raises(ValueError, match="has 9 tokens but block_size is 8"):
        model(np.zeros((1, 9), dtype=np.int64))
    with pytest.raises(ValueError, match=r"expected ids of shape \(N, T\)"):
        model(np.zeros(4, dtype=np.int64))
    with pytest.raises(ValueError, match="n_layer must be a positive int"):
        GPT(11, 8, n_layer=0)


def test_causal_logits_do_not_see_the_future():
    model = GPT(11, 8, n_layer=2, n_head=2, n_embd=8)
    ids = np.random.default_rng(1).integers(0, 11, size=(2, 8))
    ids2 = ids.copy()
    ids2[:, 5:] = (ids2[:, 5:] + 1) % 11
    np.testing.assert_allclose(model(ids).data[:, :5], model(ids2).data[:, :5], atol=1e-6)


def test_generate_shape_range_crop_and_top_k():
    model = GPT(13, 4, n_layer=1, n_head=2, n_embd=8)
    start = np.array([[1, 2], [3, 4], [5, 6]])
    out = model.generate(start, max_new_tokens=10)  # longer than block_size: cropped
    assert out.shape == (3, 12) and out.dtype == start.dtype
    assert out.min() >= 0 and out.max() < 13
    np.testing.assert_array_equal(out[:, :2], start)
    # top_k=1 is greedy decoding: the argmax of the logits of the cropped context
    greedy = model.generate(start, max_new_tokens=6, top_k=1)
    ids = start
    for _ in range(6):
        with dezero.no_grad():
            nxt = model(ids[:, -4:]).data[:, -1].argmax(axis=-1)
        ids = np.concatenate([ids, nxt[:, None]], axis=1)
    np.testing.assert_array_equal(greedy, ids)
    # top_k=3: every new token is among the 3 most likely at its step
    np.random.seed(5)  # noqa: NPY002
    out = model.generate(start, max_new_tokens=5, top_k=3, temperature=2.0)
    for j in range(2, 7):
        with dezero.no_grad():
            logits = model(out[:, max(0, j - 4):j]).data[:, -1]
        top3 = np.argsort(logits, axis=-1)[:, -3:]
        assert all(out[i, j] in top3[i] for i in range(3))
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        model.generate(start, 1, temperature=0)


def _greedy_reference(model, ids, n):
    """Greedy decoding written out: the argmax of the full forward of the cropped context."""
    for _ in range(n):
        with dezero.no_grad(), dezero.test_mode():
            nxt = model(ids[:, -model.block_size:]).data[:, -1].argmax(axis=-1)
        ids = np.concatenate([ids, nxt[:, None].astype(ids.dtype)], axis=1)
    return ids


@pytest.mark.parametrize("tie", [False, True])
def test_kv_cache_greedy_tokens_equal_the_uncached_ones_past_block_size(tie):
    np.random.seed(3)  # noqa: NPY002
    model = GPT(17, 6, n_layer=2, n_head=2, n_embd=16, tie_weights=tie)
    for p in model.params():  # larger weights than GPT-2's init: well separated logits
        p.data *= 20
    start = np.random.default_rng(4).integers(0, 17, size=(3, 2))
    want = _greedy_reference(model, start, 12)  # 14 tokens: twice past block_size 6
    cached = model.generate(start, 12, top_k=1)
    uncached = model.generate(start, 12, top_k=1, use_cache=False)
    np.testing.assert_array_equal(uncached, want)
    np.testing.assert_array_equal(cached, want)
    # a prompt longer than block_size is cropped, with and without the cache
    long = np.random.default_rng(5).integers(0, 17, size=(2, 9))
    np.testing.assert_array_equal(model.generate(long, 4, top_k=1),
                                  _greedy_reference(model, long, 4))


def test_kv_cache_sampling_matches_the_uncached_draws():
    model = GPT(11, 8, n_layer=2, n_head=2, n_embd=8)
    start = np.array([[1, 2, 3], [4, 5, 6]])
    np.random.seed(7)  # noqa: NPY002
    a = model.generate(start, 9, temperature=0.7, top_k=5)
    np.random.seed(7)  # noqa: NPY002
    b = model.generate(start, 9, temperature=0.7, top_k=5, use_cache=False)
    np.testing.assert_array_equal(a, b)


def test_kv_cache_step_logits_equal_the_full_forward():
    import dezero.layers as L

    model = GPT(13, 8, n_layer=2, n_head=4, n_embd=16)
    ids = np.random.default_rng(0).integers(0, 13, size=(2, 7))
    with dezero.no_grad(), dezero.test_mode():
        full = model(ids).data
        caches = [L.KVCache(8) for _ in model.blocks]
        parts = [model._logits(model._hidden(ids[:, :3], caches)).data]  # a prompt, then
        for t in range(3, 5):                                          # one token a step,
            parts.append(model._logits(model._hidden(ids[:, t:t + 1], caches)).data)
        parts.append(model._logits(model._hidden(ids[:, 5:], caches)).data)  # then two
    assert len(caches[0]) == 7
    np.testing.assert_allclose(np.concatenate(parts, axis=1), full, rtol=1e-5, atol=1e-6)


def test_eos_rows_stop_and_are_filled_with_eos():
    model = GPT(7, 16, n_layer=1, n_head=1, n_embd=8)
    start = np.array([[1], [2], [3]])
    greedy = model.generate(start, 10, top_k=1)
    eos = int(greedy[0, 3])  # the third token row 0 produces
    out = model.generate(start, 10, top_k=1, eos_id=eos)
    assert out.shape == (3, 11)
    for row_out, row_greedy in zip(out, greedy):
        hits = np.flatnonzero(row_greedy[1:] == eos)
        if len(hits) == 0:
            np.testing.assert_array_equal(row_out, row_greedy)
        else:
            stop = 1 + hits[0]
            np.testing.assert_array_equal(row_out[:stop + 1], row_greedy[:stop + 1])
            assert (row_out[stop:] == eos).all()
    # every row stopping ends early, the output keeps its full width
    out = model.generate(np.array([[1], [1]]), 10, top_k=1, eos_id=int(greedy[0, 1]))
    assert out.shape == (2, 11) and (out[:, 1:] == greedy[0, 1]).all()


@pytest.mark.parametrize("ids, kwargs, error, words", [
    (np.array([[1, 2]], dtype=np.uint8), {}, ValueError, "dtype uint8 cannot hold"),
    (np.array([[1.0, 2.0]]), {}, TypeError, "ids must be integers, got dtype float64"),
    (np.array([[True]]), {}, TypeError, "ids must be integers, got dtype bool"),
    (np.zeros((2, 0), dtype=np.int64), {}, ValueError, r"got shape \(2, 0\)"),
    (np.zeros((0, 3), dtype=np.int64), {}, ValueError, r"got shape \(0, 3\)"),
    (np.zeros(3, dtype=np.int64), {}, ValueError, r"shape \(N, T\)"),
    (np.array([[1, 300]]), {}, ValueError, r"in \[0, vocab_size=300\), got 300"),
    (np.array([[-1, 2]]), {}, ValueError, r"in \[0, vocab_size=300\), got -1"),
    ("hello", {}, TypeError, "ids must be an \\(N, T\\) array"),
    (np.array([[1]]), {"temperature": float("nan")}, ValueError, "temperature must be a finite"),
    (np.array([[1]]), {"temperature": -1.0}, ValueError, "got -1.0"),
    (np.array([[1]]), {"temperature": 0}, ValueError, "temperature must be a finite"),
    (np.array([[1]]), {"temperature": float("inf")}, ValueError, "temperature must be a finite"),
    (np.array([[1]]), {"top_k": 2.5}, ValueError, "top_k must be None or an int >= 1, got 2.5"),
    (np.array([[1]]), {"top_k": 0}, ValueError, "top_k must be None or an int >= 1, got 0"),
    (np.array([[1]]), {"top_k": -3}, ValueError, "top_k must be None or an int >= 1, got -3"),
    (np.array([[1]]), {"eos_id": 300}, ValueError, "eos_id must be None or an id"),
    (np.array([[1]]), {"max_new_tokens": -1}, ValueError, "max_new_tokens must be an int >= 0"),
    (np.array([[1]]), {"max_new_tokens": 2.0}, ValueError, "max_new_tokens must be an int"),
    (np.array([[1]]), {"use_cache": "yes"}, TypeError, "use_cache must be a bool"),
])
def test_generate_refuses_bad_arguments_by_name(ids, kwargs, error, words):
    model = GPT(300, 8, n_layer=1, n_head=1, n_embd=4)
    kwargs = {"max_new_tokens": 3, **kwargs}
    state = np.random.get_state()[1].copy()  # noqa: NPY002
    with pytest.raises(error, match=words):
        model.generate(ids, **kwargs)
    assert (np.random.get_state()[1] == state).all()  # refused before any draw  # noqa: NPY002


def test_generate_keeps_a_small_dtype_that_fits_and_nan_weights_are_named():
    model = GPT(200, 8, n_layer=1, n_head=1, n_embd=4)
    out = model.generate(np.array([[1, 2]], dtype=np.uint8), 5)
    assert out.dtype == np.uint8 and out.shape == (1, 7)
    assert model.generate(np.array([[3]]), 0).tolist() == [[3]]
    np.random.seed(1)  # noqa: NPY002
    a = model.generate(np.array([[3]]), 4, top_k=500)  # above vocab_size: keeps them all
    np.random.seed(1)  # noqa: NPY002
    np.testing.assert_array_equal(a, model.generate(np.array([[3]]), 4))
    model.ln_f.gamma.data[:] = np.nan
    with pytest.raises(ValueError, match="non-finite logits"):
        model.generate(np.array([[1]]), 2)


def test_tied_head_is_one_parameter_counted_and_saved_once(tmp_path):
    V, B, Lyr, C = 13, 8, 2, 16
    model = GPT(V, B, n_layer=Lyr, n_head=2, n_embd=C, tie_weights=True)
    assert model.head is None
    names = [n for n, _ in model.named_params()]
    assert "tok_emb/W" in names and not any(n.startswith("head") for n in names)
    assert sum(p.size for p in model.params()) == _count(V, B, Lyr, C) - C * V
    ids = np.random.default_rng(0).integers(0, V, size=(2, 5))
    logits = model(ids)
    h = model._hidden(ids).data
    np.testing.assert_allclose(logits.data, h @ model.tok_emb.W.data.T, rtol=1e-5, atol=1e-6)
    # the gradient of the shared matrix adds both uses
    F.sum(logits).backward()
    assert model.tok_emb.W.grad is not None
    table = str(model.summary(ids))
    assert f"Trainable params: {_count(V, B, Lyr, C) - C * V:,}\n" in table
    path = tmp_path / "tied.npz"
    model.save_weights(str(path))
    assert "head/W" not in np.load(path).files
    other = GPT(V, B, n_layer=Lyr, n_head=2, n_embd=C, tie_weights=True)
    other.load_weights(str(path))
    np.testing.assert_array_equal(other(ids).data, logits.data)
    with pytest.raises(TypeError, match="tie_weights must be a bool"):
        GPT(V, B, tie_weights="yes")


def test_skip_init_draws_nothing_and_builds_the_same_shapes():
    import dezero.layers as L

    state = np.random.get_state()[1].copy()  # noqa: NPY002
    with L.skip_init():
        assert L.init_skipped()
        model = GPT(50, 16, n_layer=2, n_head=2, n_embd=8)
    assert not L.init_skipped()
    assert (np.random.get_state()[1] == state).all()  # noqa: NPY002
    ref = GPT(50, 16, n_layer=2, n_head=2, n_embd=8)
    assert [(n, p.shape, p.dtype) for n, p in model.named_params()] == [
        (n, p.shape, p.dtype) for n, p in ref.named_params()]


def test_param_groups_decay_matrices_only():
    model = GPT(13, 4, n_layer=2, n_head=2, n_embd=8)
    decay, rest = model.param_groups(0.1)
    assert decay["weight_decay"] == 0.1 and rest["weight_decay"] == 0.0
    assert all(p.ndim == 2 for p in decay["params"].values())
    assert all(p.ndim == 1 for p in rest["params"].values())
    assert len(decay["params"]) + len(rest["params"]) == len(list(model.params()))
    assert "head/W" in decay["params"] and "ln_f/gamma" in rest["params"]


@pytest.mark.slow
def test_tiny_gpt_overfits_a_short_text():
    text = "To be, or not to be, that is the question: whether 'tis nobler in the mind to su"
    text = (text + "ffer the slings")[:100]
    vocab = sorted(set(text))
    ids = np.array([vocab.index(c) for c in text])
    np.random.seed(0)  # noqa: NPY002
    T = 32
    model = GPT(len(vocab), T, n_layer=2, n_head=2, n_embd=32)
    opt = optimizers.AdamW(alpha=3e-3, weight_decay=0.0).setup(model.param_groups(0.0))
    starts = np.arange(0, len(text) - T + 1, 4)  # overlapping windows that cover the text
    x = ids[starts[:, None] + np.arange(T)]
    t = ids[starts[:, None] + np.arange(1, T + 1)]
    for _ in range(150):
        loss = F.softmax_cross_entropy(F.reshape(model(x), (-1, len(vocab))), t.reshape(-1))
        model.cleargrads()
        loss.backward()
        opt.update()
    assert float(loss.data) < 0.1
    # and it recites the text greedily from its first character (within one block)
    out = model.generate(ids[None, :1], max_new_tokens=T - 1, top_k=1)
    assert "".join(vocab[i] for i in out[0]) == text[:T]


def test_second_order_through_a_block_works():
    model = GPT(5, 4, n_layer=1, n_head=1, n_embd=4)
    x = Variable(np.random.default_rng(2).standard_normal((1, 3, 4)).astype(np.float32))
    y = model.blocks[0](x)
    F.sum(y * y).backward(create_graph=True)
    gx = x.grad
    x.cleargrad()
    F.sum(gx * gx).backward()
    assert x.grad.shape == x.shape and np.isfinite(x.grad.data).all()


def test_example_trains_evaluates_samples_and_saves(tmp_path, monkeypatch, capsys):
    import json

    text = "ROMEO:\nBut soft, what light through yonder window breaks?\n" * 20
    tiny_shakespeare(tmp_path, monkeypatch, text)
    module = load_example("gpt", "example_gpt")
    out = tmp_path / "out"
    result = module.main(["--iters", "4", "--block-size", "8", "--batch-size", "2",
                          "--n-layer", "1", "--n-head", "2", "--n-embd", "8",
                          "--eval-interval", "2", "--eval-iters", "1", "--final-eval-iters", "2",
                          "--sample-length", "20", "--warmup", "2", "--out", str(out),
                          "--no-progress", "--release-memory"])
    printed = capsys.readouterr().out
    assert "iter 2: train loss" in printed and "val loss" in printed
    assert [h["iter"] for h in result["history"]] == [0, 2, 4]
    assert len(result["sample"]) == 21 and set(result["sample"]) <= set(text)
    assert (out / "gpt.npz").exists() and (out / "sample.txt").exists()
    saved = json.loads((out / "history.json").read_text())
    assert saved["history"][-1]["val"] == result["history"][-1]["val"]
    model = GPT(len(set(text)), 8, n_layer=1, n_head=2, n_embd=8)
    model.load_weights(str(out / "gpt.npz"))
    # the warm-up then cosine schedule
    assert module.lr_at(0, 1.0, 0.1, 2, 4) == 0.5
    assert module.lr_at(2, 1.0, 0.1, 2, 4) == 1.0
    assert module.lr_at(4, 1.0, 0.1, 2, 4) == pytest.approx(0.1)


@pytest.mark.gpu
def test_gpt_on_the_gpu_matches_the_cpu():
    from dezero import cuda

    cp = cuda.cupy
    model = GPT(13, 8, n_layer=2, n_head=2, n_embd=16)
    ids = np.random.default_rng(0).integers(0, 13, size=(3, 8))
    want = model(ids).data
    model.to_gpu()
    got = model(cp.asarray(ids))
    np.testing.assert_allclose(cuda.as_numpy(got.data), want, atol=1e-4)
    loss = F.softmax_cross_entropy(F.reshape(got, (-1, 13)), cp.asarray(ids.reshape(-1)))
    loss.backward()
    assert all(isinstance(p.grad.data, cp.ndarray) for p in model.params())
    out = model.generate(cp.asarray(ids[:, :2]), max_new_tokens=10, top_k=5)
    assert isinstance(out, cp.ndarray) and out.shape == (3, 12)
    assert int(out.min()) >= 0 and int(out.max()) < 13


def test_importing_dezero_stops_the_page_faults_of_repeated_steps():
    # in a child process: the allocator setting is process-wide. "keep": what importing
    # dezero does by itself; "default": with DEZERO_KEEP_FREED_MEMORY=0 (glibc's defaults)
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    code = textwrap.dedent("""
        import resource, sys
        import numpy as np
        import dezero
        applied = dezero.allocator.is_keeping()
        a = np.ones((512, 512), np.float32)
        def step():  # fresh 1 MiB arrays every time, freed in between
            b = a * 2.0
            c = b @ a
            return float(c[0, 0] + (c + b).sum())
        for _ in range(3):
            step()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(20):
            step()
        print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """)
    root = Path(__file__).resolve().parent.parent
    out = {}
    for mode in ("keep", "default"):
        env = dict(os.environ, DEZERO_KEEP_FREED_MEMORY="1" if mode == "keep" else "0")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True,
                              text=True, cwd=root, check=True, timeout=120, env=env)
        applied, faults = proc.stdout.split()
        out[mode] = (applied, int(faults))
    if sys.platform.startswith("linux") and out["keep"][0] == "True":
        assert out["keep"][1] < 100 < 1000 < out["default"][1], out  # glibc's defaults fault
    else:
        assert out["keep"][0] == "False"
    assert out["default"][0] == "False"


def test_kv_cache_grows_checks_shapes_and_refuses_a_graph():
    import dezero.layers as L

    with pytest.raises(ValueError, match="max_len must be a positive int or None, got 0"):
        L.KVCache(0)
    cache = L.KVCache(max_len=2)
    k = np.arange(2 * 3 * 2 * 4, dtype=np.float32).reshape(2, 3, 2, 4)
    keys, values = cache.append(k, k + 1)
    assert len(cache) == 2 and keys.shape == (2, 3, 2, 4)
    np.testing.assert_array_equal(values, k + 1)
    keys, _ = cache.append(k[:, :, :1] * 10, k[:, :, :1])  # past max_len: it grows
    assert len(cache) == 3 and cache.keys.shape[2] >= 3
    np.testing.assert_array_equal(keys[:, :, :2], k)  # the old positions kept
    np.testing.assert_array_equal(keys[:, :, 2:], k[:, :, :1] * 10)
    with pytest.raises(ValueError, match=r"reset\(\) it before a batch of another shape"):
        cache.append(np.zeros((1, 3, 1, 4), np.float32), np.zeros((1, 3, 1, 4), np.float32))
    cache.reset()
    assert len(cache) == 0 and cache.append(np.zeros((1, 3, 1, 4), np.float32),
                                            np.zeros((1, 3, 1, 4), np.float32))[0].shape == (
        1, 3, 1, 4)
    mha = L.MultiHeadAttention(8, 2, causal=True)
    with pytest.raises(RuntimeError, match=r"decode under dezero\.no_grad"):
        mha(np.ones((1, 2, 8), np.float32), None, L.KVCache())
