"""dezero.text: GPT-2's tokenizer (byte-level BPE with Hugging Face's ids; extra ``text``).

``GPT2Tokenizer`` turns text into the token ids a pretrained GPT-2 reads and back. It reads
GPT-2's ``vocab.json`` and ``merges.txt`` (from a folder, or from the Hugging Face hub
through ``dezero.download.hub_files``) and runs them with the ``tokenizers`` library (the
Rust implementation ``transformers`` uses, fast and offline), so the ids are exactly those
of Hugging Face's GPT-2 tokenizer. The library is imported here only, when a tokenizer is
made.
"""

from __future__ import annotations

import os

import numpy as np

from dezero import download

__all__ = ["GPT2Tokenizer"]

EOS_TOKEN = "<|endoftext|>"


def _tokenizers():
    try:
        import tokenizers
    except ImportError as e:
        raise ImportError(
            'GPT2Tokenizer needs the tokenizers library: pip install "dezero-next[text]"'
        ) from e
    return tokenizers


class GPT2Tokenizer:
    """GPT-2's byte-level BPE tokenizer: ``encode(str) -> int64 ids``, ``decode(ids) -> str``.

    ``GPT2Tokenizer(vocab_file, merges_file)`` reads GPT-2's ``vocab.json`` (token -> id)
    and ``merges.txt`` (the merges in rank order); :meth:`from_pretrained` finds them in a
    folder or fetches them from the hub. Text is split with GPT-2's pre-tokenizing pattern
    (contractions, runs of letters, of digits, of other symbols, each with its leading
    space), every byte is mapped to one of 256 printable characters, and the merges are
    applied by rank; ``<|endoftext|>`` written in the text is the special token (id 50256
    for GPT-2), as Hugging Face's tokenizer treats it. Any text round-trips:
    ``decode(encode(s)) == s``.

    Attributes:
        vocab_size: the number of ids (50257 for GPT-2, special tokens included).
        eos_id: the id of ``<|endoftext|>`` (None when the vocabulary lacks it).

    Needs the ``tokenizers`` library (extra ``text``).
    """

    def __init__(self, vocab_file, merges_file):
        tk = _tokenizers()
        self.vocab_file, self.merges_file = os.fspath(vocab_file), os.fspath(merges_file)
        for path in (self.vocab_file, self.merges_file):
            if not os.path.isfile(path):
                raise FileNotFoundError(f"GPT2Tokenizer: {path!r} does not exist")
        try:
            bpe = tk.models.BPE.from_file(self.vocab_file, self.merges_file)
        except Exception as e:  # the library's own error for a malformed file
            raise ValueError(
                f"GPT2Tokenizer: cannot read {self.vocab_file!r} and {self.merges_file!r} as "
                f"GPT-2's vocab.json and merges.txt ({e})"
            ) from e
        tokenizer = tk.Tokenizer(bpe)
        tokenizer.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = tk.decoders.ByteLevel()
        # GPT-2's one special token: found in the text as a whole, never split by BPE
        tokenizer.add_special_tokens([tk.AddedToken(EOS_TOKEN, special=True, normalized=False)])
        self._tokenizer = tokenizer
        self.vocab_size: int = tokenizer.get_vocab_size(with_added_tokens=True)
        self.eos_id: int | None = tokenizer.token_to_id(EOS_TOKEN)

    @classmethod
    def from_pretrained(cls, name_or_path, *, cache_dir=None) -> GPT2Tokenizer:
        """The tokenizer of a folder (``vocab.json`` and ``merges.txt``) or of a hub model.

        ``name_or_path`` is a folder, or a hub name such as ``"gpt2"`` (any GPT-2 size
        shares the same files), fetched through ``huggingface_hub`` (extra ``hub``) into its
        cache (``cache_dir`` overrides the folder); see ``dezero.download.hub_files``.
        """
        path = os.fspath(name_or_path)
        files = ("vocab.json", "merges.txt")
        if os.path.isdir(path):
            return cls(*(os.path.join(path, f) for f in files))
        if os.path.exists(path) or path.startswith((".", "/", "~")) or path.count("/") > 1:
            raise FileNotFoundError(f"GPT2Tokenizer.from_pretrained: {path!r} is not a folder "
                                    f"holding vocab.json and merges.txt")
        fetched = download.hub_files(path.replace(os.sep, "/"), files, cache_dir=cache_dir)
        return cls(fetched["vocab.json"], fetched["merges.txt"])

    def save_pretrained(self, folder) -> None:
        """Write ``vocab.json`` and ``merges.txt`` into ``folder`` (created when missing),
        beside a model's :meth:`dezero.models.GPT.save_pretrained` files."""
        import shutil

        from dezero.serialization import atomic_write

        folder = os.fspath(folder)
        os.makedirs(folder, exist_ok=True)
        for source, name in ((self.vocab_file, "vocab.json"), (self.merges_file, "merges.txt")):
            target = os.path.join(folder, name)
            if os.path.exists(target) and os.path.samefile(source, target):
                continue
            with open(source, "rb") as src, atomic_write(target) as dst:
                shutil.copyfileobj(src, dst)

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"GPT2Tokenizer(vocab_size={self.vocab_size}, eos_id={self.eos_id})"

    def encode(self, text: str) -> np.ndarray:
        """The ids of ``text``, a 1-D int64 array (no special token is added)."""
        if not isinstance(text, str):
            raise TypeError(f"GPT2Tokenizer.encode: text must be a str, got "
                            f"{type(text).__name__}")
        return np.asarray(self._tokenizer.encode(text, add_special_tokens=False).ids,
                          dtype=np.int64)

    def decode(self, ids) -> str:
        """The text of ``ids`` (a 1-D sequence or array of ints; a Variable's data too).

        Special tokens are written out (``<|endoftext|>``); bytes that do not form valid
        UTF-8 (a token sequence cut inside a character) become U+FFFD.
        """
        from dezero import cuda
        from dezero.core import Variable

        data = ids.data if isinstance(ids, Variable) else ids
        array = np.asarray(cuda.as_numpy(data) if isinstance(data, cuda.array_types) else data)
        if array.dtype.kind not in "iu" and not (array.size == 0 and array.dtype.kind == "f"):
            raise TypeError(f"GPT2Tokenizer.decode: ids must be integers, got dtype "
                            f"{array.dtype}")
        if array.ndim > 1:
            raise ValueError(f"GPT2Tokenizer.decode: expected a 1-D sequence of ids, got "
                             f"shape {array.shape} (decode each row)")
        array = array.reshape(-1).astype(np.int64)
        bad = array[(array < 0) | (array >= self.vocab_size)]
        if bad.size:
            raise ValueError(f"GPT2Tokenizer.decode: ids must be in [0, vocab_size="
                             f"{self.vocab_size}), got {int(bad[0])}")
        return self._tokenizer.decode(array.tolist(), skip_special_tokens=False)
