"""GPT training step: dezero.models.GPT vs the same architecture in PyTorch, CPU.

nanoGPT's "baby" config for shakespeare_char: block 64, batch 12, 4 layers, 4 heads, width
128, vocabulary 65, dropout 0. One step = forward on a (12, 64) batch of ids, cross-entropy
over all positions, backward, global-norm gradient clipping at 1.0 and an AdamW update with
weight decay 0.1 on the matrices only. PyTorch runs the same network (fused qkv, pre-LN
blocks, tanh-GELU MLP, bias-free head) built from ``torch.nn`` modules with
``F.scaled_dot_product_attention``, starting from dezero's initial weights; the first loss
is checked to agree. Reported: milliseconds per step, and forward only (no_grad), at the
machine's default threads (each framework's own default, or ``--threads``) and with 1
thread each; and the peak memory of the process (default threads) above its memory after
the imports.

Each framework runs in its own process (benchmarks/common.py), as a user runs it: no
private dezero call, no allocator setting made by the script. ``--ab OTHER_TREE`` compares
two dezero trees.

    python benchmarks/bench_gpt.py [--quick] [--profile] [--threads N] [--ab OTHER_TREE]
"""

from __future__ import annotations

import numpy as np

try:  # as a script (python benchmarks/bench_gpt.py) or imported by run.py
    from common import Table, Workload, bench_main, compare, profile_workload
except ImportError:  # imported as benchmarks.bench_gpt
    from benchmarks.common import Table, Workload, bench_main, compare, profile_workload

import dezero
import dezero.functions as F
from dezero.models import GPT
from dezero.optimizers import AdamW, ClipGrad

BABY = {"vocab_size": 65, "block_size": 64, "n_layer": 4, "n_head": 4, "n_embd": 128}
BATCH = 12
LR = 1e-3
WEIGHT_DECAY = 0.1


def _batch(cfg, batch, seed=0):
    rng = np.random.default_rng(seed)
    V, T = cfg["vocab_size"], cfg["block_size"]
    x = rng.integers(0, V, size=(batch, T + 1))
    return x[:, :-1].copy(), x[:, 1:].copy()


# --- dezero ------------------------------------------------------------------------------
def make_dezero(cfg, batch):
    np.random.seed(0)  # noqa: NPY002  (dezero draws weights from the global generator)
    model = GPT(**cfg)
    opt = AdamW(alpha=LR, beta2=0.99, weight_decay=WEIGHT_DECAY)
    opt.setup(model.param_groups(WEIGHT_DECAY))
    opt.add_hook(ClipGrad(1.0))
    x, t = _batch(cfg, batch)
    V = cfg["vocab_size"]

    def step():
        logits = model(x)
        loss = F.softmax_cross_entropy(F.reshape(logits, (-1, V)), t.reshape(-1))
        model.cleargrads()
        loss.backward()
        opt.update()
        return loss

    def forward_only():
        with dezero.no_grad():
            model(x)

    return model, step, forward_only


# --- torch ---------------------------------------------------------------------------------
def make_torch(torch, model, cfg, batch):
    """The same network in torch, with ``model``'s initial weights."""
    nn = torch.nn
    tF = torch.nn.functional
    C, H = cfg["n_embd"], cfg["n_head"]

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1 = nn.LayerNorm(C)
            self.qkv = nn.Linear(C, 3 * C)
            self.aproj = nn.Linear(C, C)
            self.ln2 = nn.LayerNorm(C)
            self.fc = nn.Linear(C, 4 * C)
            self.proj = nn.Linear(4 * C, C)

        def forward(self, x):
            N, T, _ = x.shape
            q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
            q, k, v = (a.view(N, T, H, C // H).transpose(1, 2) for a in (q, k, v))
            y = tF.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.aproj(y.transpose(1, 2).contiguous().view(N, T, C))
            return x + self.proj(tF.gelu(self.fc(self.ln2(x)), approximate="tanh"))

    class TorchGPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(cfg["vocab_size"], C)
            self.pos = nn.Embedding(cfg["block_size"], C)
            self.blocks = nn.ModuleList([Block() for _ in range(cfg["n_layer"])])
            self.ln_f = nn.LayerNorm(C)
            self.head = nn.Linear(C, cfg["vocab_size"], bias=False)

        def forward(self, ids):
            T = ids.shape[1]
            x = self.tok(ids) + self.pos.weight[:T]
            for b in self.blocks:
                x = b(x)
            return self.head(self.ln_f(x))

    tm = TorchGPT()

    def put(dst, src, transpose=False):
        a = src.data.T if transpose else src.data
        dst.copy_(torch.from_numpy(np.ascontiguousarray(a)))

    with torch.no_grad():
        put(tm.tok.weight, model.tok_emb.W)
        put(tm.pos.weight, model.pos_emb.W)
        for tb, db in zip(tm.blocks, model.blocks):
            for tl, dl in ((tb.qkv, db.attn.qkv), (tb.aproj, db.attn.proj), (tb.fc, db.fc),
                           (tb.proj, db.proj)):
                put(tl.weight, dl.W, transpose=True)
                put(tl.bias, dl.b)
            for tl, dl in ((tb.ln1, db.ln1), (tb.ln2, db.ln2)):
                put(tl.weight, dl.gamma)
                put(tl.bias, dl.beta)
        put(tm.ln_f.weight, model.ln_f.gamma)
        put(tm.ln_f.bias, model.ln_f.beta)
        put(tm.head.weight, model.head.W, transpose=True)
    decay = [p for p in tm.parameters() if p.dim() >= 2]
    rest = [p for p in tm.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                             {"params": rest, "weight_decay": 0.0}], lr=LR, betas=(0.9, 0.99))
    xa, ta = _batch(cfg, batch)
    x, t = torch.from_numpy(xa), torch.from_numpy(ta)
    V = cfg["vocab_size"]

    def step():
        loss = tF.cross_entropy(tm(x).view(-1, V), t.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(tm.parameters(), 1.0)
        opt.step()
        return loss

    def forward_only():
        with torch.no_grad():
            tm(x)

    return step, forward_only


# --- the benchmark ---------------------------------------------------------------------------
STEP = "train step (forward+backward+update)"
FORWARD = "forward only (no_grad)"


def _config(quick):
    cfg, batch = dict(BABY), BATCH
    if quick:
        cfg.update(block_size=16, n_layer=1, n_head=2, n_embd=32)
        batch = 2
    return cfg, batch


def workload(framework: str, quick: bool = False) -> Workload:
    """One framework's GPT: the step, the forward, and (check) the first step's loss."""
    cfg, batch = _config(quick)
    model, step, forward = make_dezero(cfg, batch)  # the weights both frameworks start from
    if framework == "torch":
        import torch

        step, forward = make_torch(torch, model, cfg, batch)
        del model

        def check():
            return [step().detach().numpy()]
    else:
        def check():
            return [step().data]

    return Workload({STEP: step, FORWARD: forward}, check)


def run(quick: bool = False, profile: bool = False) -> list[Table]:
    cfg, batch = _config(quick)
    rounds = 3 if quick else 20
    min_round = 0.01 if quick else 0.2
    title = (f"GPT (block {cfg['block_size']}, batch {batch}, {cfg['n_layer']} layers, "
             f"{cfg['n_head']} heads, width {cfg['n_embd']}), AdamW + clipping: ms per step")
    res = compare("bench_gpt", quick=quick, rounds=rounds, min_round_s=min_round,
                  rtol=1e-4, atol=1e-5)
    default = res.table(f"{title}, default threads", unit="ms", scale=1e3)
    rss = res.rss_table("GPT, default threads: peak memory of the process")
    faults = res.faults_table("GPT, default threads: page faults per call", cases=[STEP])
    res1 = compare("bench_gpt", quick=quick, rounds=rounds, min_round_s=min_round, threads=1,
                   rtol=1e-4, atol=1e-5)
    one = res1.table(f"{title}, 1 thread each", unit="ms", scale=1e3)
    if profile:
        profile_workload(workload, STEP, calls=3 if quick else 20, quick=quick,
                         title="dezero, one GPT training step")
    return [default, one, rss, faults]


if __name__ == "__main__":
    bench_main(run, __doc__)
