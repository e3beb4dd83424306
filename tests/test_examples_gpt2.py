"""examples/gpt2_generate.py and examples/gpt2_finetune.py on a tiny GPT-2 checkpoint."""

import json

import numpy as np
import pytest

from dezero.models import GPT
from tests._examples import load_example, tiny_shakespeare
from tests._gpt2 import tiny_checkpoint, write_vocab

pytest.importorskip("tokenizers")
pytest.importorskip("safetensors")


@pytest.fixture
def tiny_gpt2(tmp_path):
    """A folder with config.json, model.safetensors, vocab.json and merges.txt (272 ids)."""
    folder = tmp_path / "tiny-gpt2"
    vocab = write_vocab(folder)
    tiny_checkpoint(folder, V=len(vocab), n_pos=32, n_layer=2, n_head=2, n_embd=16)
    return folder


def test_generate_prints_a_completion_and_tokens_per_second(tiny_gpt2, capsys):
    module = load_example("gpt2_generate")
    result = module.main(["--model", str(tiny_gpt2), "--prompt", "the world",
                          "--max-new-tokens", "12", "--greedy"])
    printed = capsys.readouterr().out
    assert result["text"].startswith("the world") and result["text"] in printed
    assert "12 new tokens in" in printed and "tokens/s (KV cache" in printed
    assert len(result["ids"]) == 3 + 12  # "t", "he", " world", then 12 new ids
    # the cache changes nothing in greedy decoding, past the context of 32 too
    long = module.main(["--model", str(tiny_gpt2), "--prompt", "the world",
                        "--max-new-tokens", "40", "--greedy"])
    slow = module.main(["--model", str(tiny_gpt2), "--prompt", "the world",
                        "--max-new-tokens", "40", "--greedy", "--no-cache"])
    np.testing.assert_array_equal(long["ids"], slow["ids"])


def test_generate_offline_says_what_to_download_and_where(tmp_path, monkeypatch, capsys):
    pytest.importorskip("huggingface_hub")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    module = load_example("gpt2_generate")
    assert module.main(["--model", "gpt2", "--cache-dir", str(tmp_path)]) is None
    err = capsys.readouterr().err
    assert "download config.json, model.safetensors, vocab.json, merges.txt" in err
    assert "https://huggingface.co/gpt2/tree/main" in err
    assert "--model ~/models/gpt2" in err
    # a folder without the files names the ones missing
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    assert module.main(["--model", str(tmp_path / "half")]) is None
    assert "it has config.json" in capsys.readouterr().err


def test_finetune_trains_samples_and_saves_for_transformers(tiny_gpt2, tmp_path, monkeypatch,
                                                           capsys):
    text = "the world is the world, and the world is in the world.\n" * 40
    tiny_shakespeare(tmp_path, monkeypatch, text)
    module = load_example("gpt2_finetune")
    out = tmp_path / "out"
    result = module.main(["--model", str(tiny_gpt2), "--iters", "6", "--block-size", "16",
                          "--batch-size", "2", "--eval-interval", "3", "--eval-iters", "2",
                          "--warmup", "2", "--lr", "3e-3", "--sample-length", "8",
                          "--prompt", "the", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "sample before fine-tuning" in printed and "sample after fine-tuning" in printed
    assert [h["iter"] for h in result["history"]] == [0, 3, 6]
    assert result["history"][-1]["train"] < result["history"][0]["train"]
    assert result["before"].startswith("the") and result["after"].startswith("the")
    for name in ("config.json", "model.safetensors", "vocab.json", "merges.txt",
                 "samples.txt", "history.json"):
        assert (out / name).exists(), name
    tuned = GPT.from_pretrained(out)
    original = GPT.from_pretrained(tiny_gpt2)
    assert not np.array_equal(tuned.tok_emb.W.data, original.tok_emb.W.data)
    assert json.loads((out / "history.json").read_text())["history"] == result["history"]
    assert module.lr_at(0, 1.0, 0.1, 2, 6) == 0.5 and module.lr_at(6, 1.0, 0.1, 2, 6) == (
        pytest.approx(0.1))
