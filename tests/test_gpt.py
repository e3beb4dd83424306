"""dezero.models.GPT: parameter count, initialisation, generate, overfitting a short text,
weight decay on matrices only through optimizer parameter groups, and the example."""

import math

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
    with pytest.raises(ValueError, match="temperature must be positive"):
        model.generate(start, 1, temperature=0)


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


def test_keep_freed_memory_stops_the_page_faults_of_repeated_steps():
    # in a child process: the allocator setting is process-wide
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    code = textwrap.dedent("""
        import resource, sys
        import numpy as np
        from dezero._allocator import keep_freed_memory
        applied = keep_freed_memory() if sys.argv[1] == "keep" else False
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
        proc = subprocess.run([sys.executable, "-c", code, mode], capture_output=True,
                              text=True, cwd=root, check=True, timeout=120)
        applied, faults = proc.stdout.split()
        out[mode] = (applied, int(faults))
    if sys.platform.startswith("linux") and out["keep"][0] == "True":
        assert out["keep"][1] < 100 < 1000 < out["default"][1], out  # glibc's defaults fault
    else:
        assert out["keep"][0] == "False"
