"""GPT-2 against Hugging Face transformers on PyTorch (marker ``torch``; skipped without them).

Random GPT-2 models built by transformers in several sizes: dezero's ``from_pretrained``
gives the same logits (float32, 1e-4) and the same greedy tokens, and transformers loads
dezero's ``save_pretrained`` output with the same logits. CI does not install torch; run
these where it is (``pip install torch==2.13.0 transformers``).
"""

import numpy as np
import pytest

import dezero
from dezero.models import GPT

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.torch

SIZES = [  # vocab, context, layers, heads, width, tied
    (100, 32, 1, 1, 8, True),
    (257, 64, 2, 4, 32, False),
    (1000, 128, 3, 6, 48, True),
    (5000, 96, 4, 8, 128, True),
]


def _hf_model(V, n_pos, n_layer, n_head, n_embd, tied, seed=0):
    torch.manual_seed(seed)
    config = transformers.GPT2Config(vocab_size=V, n_positions=n_pos, n_embd=n_embd,
                                      n_layer=n_layer, n_head=n_head,
                                      tie_word_embeddings=tied, layer_norm_epsilon=1e-5)
    return transformers.GPT2LMHeadModel(config).eval()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: "x".join(map(str, s)))
def test_logits_greedy_tokens_and_round_trip_equal_transformers(tmp_path, size):
    V, n_pos, tied = size[0], size[1], size[5]
    hf = _hf_model(*size)
    hf.save_pretrained(tmp_path / "hf")
    model = GPT.from_pretrained(tmp_path / "hf")
    assert model.tie_weights is tied
    ids = np.random.default_rng(0).integers(0, V, size=(3, min(n_pos, 20)))
    with torch.no_grad():
        want = hf(torch.from_numpy(ids)).logits.numpy()
    with dezero.no_grad():
        got = model(ids).data
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)

    # greedy generation, token by token (transformers' KV cache against dezero's)
    prompt = ids[:, :5]
    n = min(25, n_pos - 5)
    with torch.no_grad():
        hf_out = hf.generate(torch.from_numpy(prompt), attention_mask=torch.ones_like(
            torch.from_numpy(prompt)), max_new_tokens=n, min_new_tokens=n, do_sample=False,
            pad_token_id=0).numpy()
    np.testing.assert_array_equal(model.generate(prompt, n, top_k=1), hf_out)
    np.testing.assert_array_equal(model.generate(prompt, n, top_k=1, use_cache=False), hf_out)

    # transformers loads what dezero saves, with the same logits
    model.save_pretrained(tmp_path / "dz")
    back = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "dz").eval()
    with torch.no_grad():
        again = back(torch.from_numpy(ids)).logits.numpy()
    np.testing.assert_allclose(again, got, rtol=1e-4, atol=1e-4)
    for name, p in back.state_dict().items():
        assert np.array_equal(p.numpy(), hf.state_dict()[name].numpy()), name


def test_tokenizer_ids_equal_transformers_slow_and_fast_tokenizers(tmp_path):
    from tokenizers import ByteLevelBPETokenizer

    from dezero.text import GPT2Tokenizer

    corpus = ("First Citizen: Before we proceed any further, hear me speak. We're 12 of "
              "them; they'll say 3.5e-3 isn't café! naïve 🤖 emoji\n\n  tabs\tand  spaces ") * 30
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([corpus], vocab_size=400, special_tokens=["<|endoftext|>"],
                            show_progress=False)
    bpe.save_model(str(tmp_path))
    ours = GPT2Tokenizer.from_pretrained(tmp_path)
    slow = transformers.GPT2Tokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    fast = transformers.GPT2TokenizerFast(str(tmp_path / "vocab.json"),
                                          str(tmp_path / "merges.txt"))
    texts = [corpus[:300], "Hello<|endoftext|>world", " leading space", "trailing   ",
             "We'll've I'm 1234567 x_y", "ünïcödé ǅ \U0001d518 \u00a0nbsp", "\n\n\n", ""]
    for text in texts:
        want = slow.encode(text)
        assert fast.encode(text) == want
        assert ours.encode(text).tolist() == want, text
        assert ours.decode(want) == slow.decode(want) == text
