"""dezero.text.GPT2Tokenizer: byte-level BPE with Hugging Face's ids.

The vocabulary here is a small one the test builds (GPT-2's 256 byte characters, a few
merges, ``<|endoftext|>``); the expected ids come from a plain Python BPE written from GPT-2's
published algorithm (encoder.py's bytes_to_unicode, pre-tokenizing pattern and rank-ordered
merges), independently of the ``tokenizers`` library.
"""

import re
import sys

import numpy as np
import pytest

from tests._gpt2 import BYTE, MERGES, Hub, write_vocab

pytest.importorskip("tokenizers")
from dezero.text import GPT2Tokenizer

# Python's re has no \p{L}: [^\W\d_] is a letter, \d a digit (enough for these texts)
PATTERN = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+"""
                     r"""|\s+(?!\S)|\s+""")


def reference_encode(text, vocab):
    """GPT-2's encoder: split on <|endoftext|>, pre-tokenize, bytes -> chars, merge by rank."""
    ranks = {m: i for i, m in enumerate(MERGES)}
    ids = []
    for i, part in enumerate(text.split("<|endoftext|>")):
        if i:
            ids.append(vocab["<|endoftext|>"])
        for word in PATTERN.findall(part):
            symbols = [BYTE[b] for b in word.encode("utf-8")]
            while len(symbols) > 1:
                pairs = [(ranks.get(p, 1 << 30), j)
                         for j, p in enumerate(zip(symbols, symbols[1:]))]
                rank, j = min(pairs)
                if rank == 1 << 30:
                    break
                symbols[j:j + 2] = [symbols[j] + symbols[j + 1]]
            ids.extend(vocab[s] for s in symbols)
    return ids


TEXTS = [
    "the world",
    " the world's worldly theatre",
    "Hello there<|endoftext|>the end",
    "<|endoftext|><|endoftext|>",
    "in  the   spaces\n\n  and\ttabs ",
    "café naïve — 12 3412 ǅ emoji 🤖!",
    "x_y __init__ = 12.5e-3; #$%",
    "",
]


@pytest.fixture
def tokenizer(tmp_path):
    vocab = write_vocab(tmp_path / "tok")
    return GPT2Tokenizer.from_pretrained(tmp_path / "tok"), vocab


@pytest.mark.parametrize("text", TEXTS)
def test_ids_are_gpt2s_and_decoding_round_trips(tokenizer, text):
    tok, vocab = tokenizer
    ids = tok.encode(text)
    assert ids.dtype == np.int64 and ids.ndim == 1
    assert ids.tolist() == reference_encode(text, vocab)
    assert tok.decode(ids) == text
    assert tok.decode(list(ids)) == text


def test_sizes_and_the_special_token(tokenizer):
    tok, vocab = tokenizer
    assert tok.vocab_size == len(vocab) == 256 + len(MERGES) + 1 == len(tok)
    assert tok.eos_id == vocab["<|endoftext|>"] == tok.vocab_size - 1
    assert tok.encode("<|endoftext|>").tolist() == [tok.eos_id]
    assert tok.encode(" the").tolist() == [vocab["Ġthe"]]
    assert "vocab_size=272" in repr(tok)


def test_decode_of_a_cut_character_gives_the_replacement_character(tokenizer):
    tok, _ = tokenizer
    ids = tok.encode("ï")  # two bytes, two tokens without a merge for them
    assert len(ids) == 2 and tok.decode(ids[:1]) == "\ufffd"


def test_bad_input_is_named(tokenizer, tmp_path):
    tok, _ = tokenizer
    with pytest.raises(ValueError, match=r"ids must be in \[0, vocab_size=272\), got -1"):
        tok.decode([5, -1])
    with pytest.raises(ValueError, match="got 272"):
        tok.decode(np.array([272]))
    with pytest.raises(TypeError, match="ids must be integers, got dtype float64"):
        tok.decode([1.0, 2.0])
    with pytest.raises(ValueError, match="expected a 1-D sequence of ids"):
        tok.decode(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(TypeError, match="text must be a str, got bytes"):
        tok.encode(b"bytes")
    assert tok.decode([]) == ""
    with pytest.raises(FileNotFoundError, match=r"merges\.txt' does not exist"):
        (tmp_path / "half").mkdir()
        (tmp_path / "half" / "vocab.json").write_text("{}")
        GPT2Tokenizer.from_pretrained(tmp_path / "half")
    (tmp_path / "half" / "merges.txt").write_text("#version: 0.2\na b\n")
    (tmp_path / "half" / "vocab.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"cannot read .* as GPT-2's vocab\.json and merges\.txt"):
        GPT2Tokenizer.from_pretrained(tmp_path / "half")
    with pytest.raises(FileNotFoundError, match=r"is not a folder holding vocab\.json"):
        GPT2Tokenizer.from_pretrained(tmp_path / "nowhere")


def test_save_pretrained_and_a_variable_of_ids(tokenizer, tmp_path):
    from dezero import Variable

    tok, _ = tokenizer
    tok.save_pretrained(tmp_path / "copy")
    again = GPT2Tokenizer.from_pretrained(tmp_path / "copy")
    text = "the world<|endoftext|>"
    assert again.encode(text).tolist() == tok.encode(text).tolist()
    assert again.decode(Variable(tok.encode(text))) == text


def test_from_the_hub(tmp_path, monkeypatch):
    pytest.importorskip("huggingface_hub")
    vocab = write_vocab(tmp_path / "files")
    hub = Hub({"gpt2": tmp_path / "files"})
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        tok = GPT2Tokenizer.from_pretrained("gpt2", cache_dir=tmp_path / "cache")
    finally:
        hub.close()
    assert tok.encode(" the world").tolist() == reference_encode(" the world", vocab)


def test_without_the_library_the_error_names_the_extra(tmp_path, monkeypatch):
    write_vocab(tmp_path / "tok")
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    with pytest.raises(ImportError, match=r'pip install "dezero-next\[text\]"'):
        GPT2Tokenizer.from_pretrained(tmp_path / "tok")
