"""GPT-2 small on the CPU: dezero vs transformers on PyTorch, same random weights.

The benchmark writes a GPT-2 folder in Hugging Face's layout (random weights at GPT-2
small's size: 12 layers, 12 heads, width 768, vocabulary 50257, context 1024, the head tied
to the token embedding) with dezero's ``save_pretrained``; dezero loads it with
``GPT.from_pretrained``, transformers with ``GPT2LMHeadModel.from_pretrained`` (its default
attention, SDPA). The check: both give the same logits for one batch. Each framework runs in
its own process (benchmarks/common.py), rounds alternating; medians and ratios.

Measured:

* generation: 64 new tokens after a 16-token prompt, batch 1, greedy, with the KV cache
  (transformers' ``generate(do_sample=False, min_new_tokens=64)``, its cache on); reported
  in ms per new token (tokens/s = 1000 / that);
* a training step at batch 4 x 128 tokens: forward, cross-entropy over every position,
  backward, AdamW (weight decay on matrices only);
* dezero alone: 256 new tokens with and without the KV cache (one round each: without the
  cache a step recomputes the whole context), the speed-up;
* memory: the peak RSS of loading a ~1 GB GPT-2 folder (16 layers, width 1024; written once)
  and running one forward pass, above the RSS after the imports (transformers' included),
  against the file's size.

    python benchmarks/bench_gpt2.py [--quick] [--threads N]

A full run takes a while: on the shared 2-core machine (load about 6) about 40 minutes, of
which 17 for the 256 tokens without the cache; the folders take 0.5 and 1 GB of disk.

The folders go to ``$DEZERO_BENCH_DIR`` (default: the system's temporary folder) and are
reused by later runs. Without transformers (or torch) only dezero's side is measured.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile

import numpy as np

try:  # as a script (python benchmarks/bench_gpt2.py) or imported by run.py
    from common import Table, Timing, Workload, bench_main, compare
except ImportError:  # imported as benchmarks.bench_gpt2
    from benchmarks.common import Table, Timing, Workload, bench_main, compare

import dezero
import dezero.functions as F
from dezero.models import GPT
from dezero.optimizers import AdamW

SMALL = {"vocab_size": 50257, "block_size": 1024, "n_layer": 12, "n_head": 12, "n_embd": 768}
LARGE = {"vocab_size": 50257, "block_size": 1024, "n_layer": 16, "n_head": 16, "n_embd": 1024}
QUICK = {"vocab_size": 300, "block_size": 64, "n_layer": 2, "n_head": 2, "n_embd": 32}
PROMPT, NEW, LONG = 16, 64, 256
BATCH, BLOCK = 4, 128
GENERATE = f"generate {NEW} new tokens (KV cache, greedy, batch 1)"
TRAIN = f"train step, batch {BATCH} x {BLOCK} (AdamW)"
CACHED = f"generate {LONG} new tokens, KV cache"
UNCACHED = f"generate {LONG} new tokens, no cache"
FORWARD = "forward, 8 tokens"


def folder_for(cfg: dict) -> str:
    """A GPT-2 folder with random weights of size ``cfg`` (written once, then reused)."""
    name = "dezero-bench-gpt2-" + "-".join(str(cfg[k]) for k in sorted(cfg))
    folder = os.path.join(os.environ.get("DEZERO_BENCH_DIR") or tempfile.gettempdir(), name)
    if not os.path.exists(os.path.join(folder, "model.safetensors")):
        np.random.seed(0)  # noqa: NPY002  (dezero draws weights from the global generator)
        GPT(**cfg, tie_weights=True).save_pretrained(folder)
    return folder


def _ids(cfg, shape, seed=0):
    return np.random.default_rng(seed).integers(0, cfg["vocab_size"], size=shape)


def _sizes(quick):
    cfg = QUICK if quick else SMALL
    new, long, block = (8, 16, 16) if quick else (NEW, LONG, BLOCK)
    return cfg, new, long, block


def _rss(field):
    """This process's VmRSS or VmHWM in bytes (None where /proc is missing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # the peak (VmHWM) restarts from the current RSS
    except OSError:
        pass


def workload(framework: str, quick: bool = False, folder: str = "", part: str = "speed"):
    cfg, new, long, block = _sizes(quick)
    prompt = _ids(cfg, (1, PROMPT))
    x = _ids(cfg, (BATCH, block + 1), seed=1)
    x, t = x[:, :-1], x[:, 1:]
    V = cfg["vocab_size"]
    if framework == "dezero":
        _reset_peak()
        base = _rss("VmRSS")
        model = GPT.from_pretrained(folder)

        def check():
            with dezero.no_grad():
                return [model(prompt[:, :8]).data]

        def forward():
            with dezero.no_grad():
                model(prompt[:, :8])

        def generate(n, cache=True):
            return lambda: model.generate(prompt, n, top_k=1, use_cache=cache)

        opt = AdamW(alpha=6e-4, beta1=0.9, beta2=0.95, weight_decay=0.1)
        opt.setup(model.param_groups(0.1))

        def train_step():
            model.train()
            loss = F.softmax_cross_entropy(F.reshape(model(x), (-1, V)), t.reshape(-1))
            model.cleargrads()
            loss.backward()
            opt.update()
            model.eval()
    else:
        import torch
        import torch.nn.functional as tF
        from transformers import GPT2LMHeadModel

        _reset_peak()  # after the imports of torch and transformers
        base = _rss("VmRSS")
        hf = GPT2LMHeadModel.from_pretrained(folder).eval()
        tprompt, tx, tt = (torch.from_numpy(a) for a in (prompt, x, t))
        mask = torch.ones_like(tprompt)

        def check():
            with torch.no_grad():
                return [hf(tprompt[:, :8]).logits.numpy()]

        def forward():
            with torch.no_grad():
                hf(tprompt[:, :8])

        def generate(n, cache=True):
            return lambda: hf.generate(tprompt, attention_mask=mask, max_new_tokens=n,
                                       min_new_tokens=n, do_sample=False, use_cache=cache,
                                       pad_token_id=0)

        decay = [p for p in hf.parameters() if p.dim() >= 2]
        rest = [p for p in hf.parameters() if p.dim() < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                                 {"params": rest, "weight_decay": 0.0}], lr=6e-4,
                                betas=(0.9, 0.95))

        def train_step():
            hf.train()
            logits = hf(tx).logits
            loss = tF.cross_entropy(logits.reshape(-1, V), tt.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            hf.eval()

    if part == "memory":
        forward()
        peak = _rss("VmHWM")
        info = {} if peak is None or base is None else {f"{framework} load peak": str(peak - base)}
        return Workload({FORWARD: forward}, info=info)
    if part == "cache":
        return Workload({CACHED: generate(long), UNCACHED: generate(long, cache=False)})
    return Workload({GENERATE: generate(new), TRAIN: train_step}, check)


def _frameworks():
    have = all(importlib.util.find_spec(m) for m in ("torch", "transformers"))
    return ("dezero", "torch") if have else ("dezero",)


def run(quick: bool = False, profile: bool = False) -> list[Table]:
    cfg, new, long, _ = _sizes(quick)
    small = folder_for(cfg)
    frameworks = _frameworks()
    rounds = 3 if quick else 7
    res = compare("bench_gpt2", quick=quick, kwargs={"folder": small}, rounds=rounds,
                  frameworks=frameworks, number=1, warmup=1, rtol=1e-4, atol=1e-4)
    name = "a tiny GPT-2" if quick else "GPT-2 small (124M, random weights)"
    gen = Table(f"{name}: generation, ms per new token (tokens/s = 1000 / ms)", unit="ms",
                columns=res._column_names())
    res.add_row(gen, f"generate {new} new tokens after {PROMPT} (KV cache, greedy, batch 1)",
                GENERATE, scale=1e3 / new)
    train = res.table(f"{name}: training step, ms per step", unit="ms", scale=1e3,
                      cases=[TRAIN], labels={TRAIN: f"train step, batch {BATCH} x "
                                                    f"{_sizes(quick)[3]} (AdamW)"})
    tables = [gen, train]

    # the KV cache's speed-up, dezero alone (without the cache this takes minutes)
    cache = compare("bench_gpt2", quick=quick, kwargs={"folder": small, "part": "cache"},
                    rounds=1, frameworks=("dezero",), number=1, warmup=0)
    speedup = Table(f"{name}, dezero: {long} new tokens, no cache vs KV cache "
                    f"(ratio = the cache's speed-up)", unit="s",
                    columns=("no cache", "KV cache"))
    speedup.add(f"generate {long} new tokens after {PROMPT}", cache.timing(UNCACHED),
                cache.timing(CACHED), scale=1.0)
    tables.append(speedup)

    # memory of a load: a ~1 GB folder (a tiny one with --quick)
    big = folder_for(QUICK if quick else LARGE)
    size = os.path.getsize(os.path.join(big, "model.safetensors"))
    mem = compare("bench_gpt2", quick=quick, kwargs={"folder": big, "part": "memory"},
                  rounds=1, frameworks=frameworks, number=1, warmup=1)
    memory = Table(f"Loading a {size / 2**30:.2f} GiB GPT-2 folder and one forward pass: peak "
                   f"RSS above RSS after import, as a multiple of the file's size",
                   unit="x file", columns=mem._column_names())
    peaks = [mem.info.get(f"{c} load peak") for c in mem.columns]
    as_t = [None if p is None else Timing(int(p) / size, 0.0, 1, 1) for p in peaks]
    memory.add("peak RSS / file size", as_t[0], as_t[1] if len(as_t) > 1 else None, scale=1.0)
    tables.append(memory)
    return tables


if __name__ == "__main__":
    bench_main(run, __doc__)
