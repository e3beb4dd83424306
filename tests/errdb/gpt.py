"""models.GPT (generate, from_pretrained, save_pretrained) and dezero.text.GPT2Tokenizer:
the GPT-2 helper's callables, with the checks it wrote."""

import json

import numpy as np

from dezero.models import GPT
from dezero.serialization import CheckpointError
from tests.errdb.base import rows


def _gpt(ctx):
    np.random.seed(0)  # noqa: NPY002  (dezero draws initial weights from it)
    ctx.gpt = GPT(300, 8, n_layer=1, n_head=2, n_embd=8)
    ctx.small = GPT(20, 8, n_layer=1, n_head=2, n_embd=8)
    ctx.prompt = np.array([[1, 2, 3]])


def _gpt_and_file(ctx):
    _gpt(ctx)
    (ctx.tmp / "f.txt").write_text("a file, not a folder")


def _folder(ctx):
    """A Hugging Face style folder of a tiny GPT-2, and broken copies of it."""
    from tests._gpt2 import gpt2_config, gpt2_weights, write_checkpoint

    _gpt(ctx)
    write_checkpoint(ctx.tmp / "tiny", gpt2_weights(), gpt2_config())
    write_checkpoint(ctx.tmp / "wide", gpt2_weights(n_embd=12, n_head=3),
                     gpt2_config(n_embd=12, n_head=3))
    (ctx.tmp / "wide" / "config.json").write_text(json.dumps(gpt2_config()))  # lies: n_embd 8
    (ctx.tmp / "noconfig").mkdir()
    (ctx.tmp / "badjson").mkdir()
    (ctx.tmp / "badjson" / "config.json").write_text("{not json")
    write_checkpoint(ctx.tmp / "bert", gpt2_weights(), gpt2_config(model_type="bert"))


def _tokenizer(ctx):
    from dezero.text import GPT2Tokenizer
    from tests._gpt2 import write_vocab

    write_vocab(ctx.tmp / "tok")
    ctx.tok = GPT2Tokenizer.from_pretrained(ctx.tmp / "tok")
    (ctx.tmp / "half").mkdir()
    (ctx.tmp / "half" / "vocab.json").write_text("{}")


ENTRIES = [
    *rows("models.GPT", _gpt,
          vocab=(lambda c: GPT(0, 8), ValueError, "vocab_size must be a positive int"),
          block=(lambda c: GPT(10, 2.5), ValueError, "block_size must be a positive int"),
          tie=(lambda c: GPT(10, 8, tie_weights=1), TypeError, "tie_weights must be a bool")),
    *rows("models.GPT.forward", _gpt,
          vector=(lambda c: c.gpt(np.array([1, 2])), ValueError, "expected ids of shape (N, T)"),
          too_long=(lambda c: c.gpt(np.zeros((1, 9), np.int64)), ValueError, "block_size")),
    *rows("models.GPT.generate", _gpt,
          uint8_prompt=(lambda c: c.gpt.generate(np.array([[1, 2]], np.uint8), 2), ValueError,
                        "uint8 cannot hold the ids", "vocab_size 300"),
          nan_temperature=(lambda c: c.gpt.generate(c.prompt, 2, temperature=float("nan")),
                           ValueError, "temperature must be a finite number > 0"),
          zero_temperature=(lambda c: c.gpt.generate(c.prompt, 2, temperature=0), ValueError,
                            "temperature must be a finite number > 0"),
          float_top_k=(lambda c: c.gpt.generate(c.prompt, 2, top_k=2.5), ValueError,
                       "top_k must be None or an int >= 1, got 2.5"),
          empty=(lambda c: c.gpt.generate(np.zeros((1, 0), np.int64), 2), ValueError,
                 "expected ids of shape (N, T)"),
          no_prompts=(lambda c: c.gpt.generate(np.zeros((0, 3), np.int64), 2), ValueError,
                      "N >= 1 prompts"),
          out_of_vocab=(lambda c: c.small.generate(np.array([[1, 25]]), 2), ValueError,
                        "ids must be in [0, vocab_size=20)"),
          float_ids=(lambda c: c.gpt.generate(np.array([[1.0, 2.0]]), 2), TypeError,
                     "ids must be integers"),
          negative_count=(lambda c: c.gpt.generate(c.prompt, -1), ValueError,
                          "max_new_tokens must be an int >= 0"),
          eos=(lambda c: c.gpt.generate(c.prompt, 2, eos_id=300), ValueError,
               "eos_id must be None or an id in [0, vocab_size=300)"),
          use_cache=(lambda c: c.gpt.generate(c.prompt, 2, use_cache="yes"), TypeError,
                     "use_cache must be a bool")),
    *rows("models.GPT.from_pretrained", _folder, needs=("safetensors",),
          missing=(lambda c: GPT.from_pretrained(c.tmp / "nowhere"), FileNotFoundError,
                   "nowhere"),
          no_config=(lambda c: GPT.from_pretrained(c.tmp / "noconfig"), FileNotFoundError,
                     "config.json"),
          bad_json=(lambda c: GPT.from_pretrained(c.tmp / "badjson"), CheckpointError,
                    "is not valid JSON"),
          not_gpt2=(lambda c: GPT.from_pretrained(c.tmp / "bert"), ValueError,
                    "model_type 'bert' is not GPT-2"),
          shapes=(lambda c: GPT.from_pretrained(c.tmp / "wide"), CheckpointError,
                  "cannot load"),
          dtype=(lambda c: GPT.from_pretrained(c.tmp / "tiny", dtype=np.int32), ValueError,
                 "dtype must be float16, float32 or float64"),
          a_file=(lambda c: GPT.from_pretrained(c.tmp / "tiny" / "config.json"),
                  NotADirectoryError, "is a file")),
    *rows("models.GPT.save_pretrained", _gpt_and_file, needs=("safetensors",),
          into_a_file=(lambda c: c.gpt.save_pretrained(c.tmp / "f.txt"),
                       (FileExistsError, NotADirectoryError), "f.txt")),
    *rows("text.GPT2Tokenizer.from_pretrained", _tokenizer, needs=("tokenizers",),
          half=(lambda c: _tok().from_pretrained(c.tmp / "half"), FileNotFoundError,
                "merges.txt' does not exist"),
          nowhere=(lambda c: _tok().from_pretrained(c.tmp / "nowhere"), FileNotFoundError,
                   "is not a folder holding vocab.json")),
    *rows("text.GPT2Tokenizer.decode", _tokenizer, needs=("tokenizers",),
          negative=(lambda c: c.tok.decode([5, -1]), ValueError,
                    "ids must be in [0, vocab_size=272), got -1"),
          floats=(lambda c: c.tok.decode([1.0]), TypeError, "ids must be integers"),
          matrix=(lambda c: c.tok.decode(np.zeros((2, 2), np.int64)), ValueError,
                  "expected a 1-D sequence of ids")),
    *rows("text.GPT2Tokenizer.encode", _tokenizer, needs=("tokenizers",),
          bytes_=(lambda c: c.tok.encode(b"abc"), TypeError, "text must be a str, got bytes")),
    *rows("text.GPT2Tokenizer.save_pretrained", _tokenizer, needs=("tokenizers",),
          into_a_file=(lambda c: c.tok.save_pretrained(c.tmp / "tok" / "vocab.json"),
                       (FileExistsError, NotADirectoryError), "vocab.json")),
    *rows("text.GPT2Tokenizer", _tokenizer, needs=("tokenizers",),
          missing=(lambda c: _tok()(c.tmp / "no-vocab.json", c.tmp / "no-merges.txt"),
                   FileNotFoundError, "does not exist")),
]


def _tok():
    from dezero.text import GPT2Tokenizer

    return GPT2Tokenizer




EXEMPT = {
    "models.GPT.param_groups": "returns two groups for setup(); the optimizer reads the "
                               "weight_decay value",
    "models.GPT.HUB_NAMES": "a constant (the names from_pretrained takes from the hub)",
}
