#!/usr/bin/env python3
"""PyTorch-eager reference for scripts/bench/models.sh: the same GPT-2 or Llama shape as Strata's
models (pre-LN GPT-2 with tied embeddings and tanh GELU; Llama with RMSNorm, interleaved RoPE,
SwiGLU, GQA), timed for forward+backward on random tokens with the same threads, batch and
sequence length. Prints tokens/s. With --dtype bf16 it runs under bf16 autocast on its device (CUDA
or CPU) like Strata's trainer, and --optimizer adamw adds torch.optim.AdamW(fused=True) (ATen's fused
kernel on CPU and CUDA, as Strata's default optim.fused), so a step is a full training step
(scripts/gpu/check.sh); --optimizer adamw-exact uses the single-tensor loop (foreach=False,
fused=False), as Strata's optim.fused: false.
"""
import argparse
import json
import re
import struct
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, d, heads, kv, bias, rope, theta):
        super().__init__()
        self.h, self.kv, self.hd, self.rope, self.theta = heads, kv, d // heads, rope, theta
        self.wq = nn.Linear(d, d, bias=bias)
        self.wk = nn.Linear(d, kv * self.hd, bias=bias)
        self.wv = nn.Linear(d, kv * self.hd, bias=bias)
        self.wo = nn.Linear(d, d, bias=bias)

    def apply_rope(self, x):
        B, H, T, hd = x.shape
        inv = self.theta ** (-torch.arange(0, hd, 2, dtype=torch.float32, device=x.device) / hd)
        ang = torch.outer(torch.arange(T, dtype=torch.float32, device=x.device), inv)
        cos, sin = ang.cos(), ang.sin()
        xf = x.float().reshape(B, H, T, hd // 2, 2)
        x0, x1 = xf[..., 0], xf[..., 1]
        return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], -1).flatten(3).to(x.dtype)

    def forward(self, x):
        B, T, _ = x.shape
        q = self.wq(x).view(B, T, self.h, self.hd).transpose(1, 2)
        k = self.wk(x).view(B, T, self.kv, self.hd).transpose(1, 2)
        v = self.wv(x).view(B, T, self.kv, self.hd).transpose(1, 2)
        if self.rope:
            q, k = self.apply_rope(q), self.apply_rope(k)
        if self.kv != self.h:
            k = k.repeat_interleave(self.h // self.kv, 1)
            v = v.repeat_interleave(self.h // self.kv, 1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.wo(y.transpose(1, 2).reshape(B, T, -1))


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(d)), eps

    def forward(self, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


class Block(nn.Module):
    def __init__(self, a):
        super().__init__()
        llama = a.arch == "llama"
        norm = (lambda: RMSNorm(a.d_model)) if llama else (lambda: nn.LayerNorm(a.d_model))
        self.norm1, self.norm2 = norm(), norm()
        self.attn = Attention(a.d_model, a.n_head, a.n_kv_head, not llama, llama, 10000.0)
        self.llama = llama
        self.w1 = nn.Linear(a.d_model, a.d_ff, bias=not llama)
        self.w2 = nn.Linear(a.d_ff, a.d_model, bias=not llama)
        self.w3 = nn.Linear(a.d_model, a.d_ff, bias=False) if llama else None

    def forward(self, x):
        h = x + self.attn(self.norm1(x))
        y = self.norm2(h)
        y = F.silu(self.w1(y)) * self.w3(y) if self.llama else F.gelu(self.w1(y), approximate="tanh")
        return h + self.w2(y)


class Model(nn.Module):
    def __init__(self, a, seq):
        super().__init__()
        self.tok = nn.Embedding(a.vocab, a.d_model)
        self.pos = nn.Parameter(torch.zeros(seq, a.d_model)) if a.arch == "gpt" else None
        self.blocks = nn.ModuleList([Block(a) for _ in range(a.n_layer)])
        self.norm = RMSNorm(a.d_model) if a.arch == "llama" else nn.LayerNorm(a.d_model)
        self.head = None if a.tie else nn.Linear(a.d_model, a.vocab, bias=False)

    def forward(self, ids):
        x = self.tok(ids)
        if self.pos is not None:
            x = x + self.pos[: ids.shape[1]]
        for b in self.blocks:
            x = b(x)
        x = self.norm(x)
        return self.head(x) if self.head is not None else F.linear(x, self.tok.weight)


def read_safetensors(path):
    """The tensors of a safetensors file (F32/F64/I64/BF16), without the safetensors package."""
    dtypes = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "BF16": torch.bfloat16}
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, c = e["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[b:c]), dtype=dtypes[e["dtype"]]).reshape(e["shape"])
    return out


def load_strata_init(m, path, seq):
    """Loads weights written by `strata bench-model --save-init` (Strata's parameter names) into the
    reference model; returns the batch (ids, targets) stored beside them."""
    t = read_safetensors(path)
    rename = [(r"^tok_emb\.", "tok."), (r"^norm_f\.", "norm."), (r"\.mlp\.", ".")]
    state = {}
    for name, v in t.items():
        if name.startswith("__"):
            continue
        if name == "pos_emb":
            state["pos"] = v[:seq]
            continue
        for a, b in rename:
            name = re.sub(a, b, name)
        state[name] = v
    m.load_state_dict(state, strict=True)
    return t["__ids"], t["__targets"]


def main():
    p = argparse.ArgumentParser()
    for k in ["n_layer", "d_model", "n_head", "n_kv_head", "d_ff", "vocab", "tie", "batch", "seq", "steps", "warmup", "threads"]:
        p.add_argument(f"--{k}", type=int, required=True)
    p.add_argument("--arch", required=True)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--optimizer", default="none", choices=["none", "adamw", "adamw-exact"])
    p.add_argument("--load", help="start from `strata bench-model --save-init` weights and batch; prints first_loss")
    p.add_argument("--profile", action="store_true", help="after timing, print the top device kernels of 3 steps")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    m = Model(a, a.seq).to(dev).train()
    opt = None
    if a.optimizer == "adamw":
        opt = torch.optim.AdamW(m.parameters(), lr=1e-4, fused=True)
    elif a.optimizer == "adamw-exact":
        opt = torch.optim.AdamW(m.parameters(), lr=1e-4, foreach=False, fused=False)
    ids = torch.randint(0, a.vocab, (a.batch, a.seq), device=dev)
    tgt = torch.randint(0, a.vocab, (a.batch, a.seq), device=dev)
    if a.load:
        ids, tgt = (x.to(dev) for x in load_strata_init(m, a.load, a.seq))
    n = sum(p.numel() for p in m.parameters())
    start = time.perf_counter()
    for s in range(a.warmup + a.steps):
        m.zero_grad(set_to_none=True)
        with torch.autocast(a.device, dtype=torch.bfloat16, enabled=a.dtype == "bf16"):
            logits = m(ids)
        loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), tgt.view(-1))
        loss.backward()
        if opt is not None:
            opt.step()
        if s == 0:
            first_loss = loss.item()
        if s + 1 == a.warmup:
            loss.item()  # waits for the device
            start = time.perf_counter()
    loss.item()
    secs = time.perf_counter() - start
    print(f"first_loss: {first_loss:.9g}")
    if a.profile:
        from torch.profiler import ProfilerActivity, profile
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if a.device == "cuda" else [])
        with profile(activities=acts) as prof:
            for _ in range(3):
                m.zero_grad(set_to_none=True)
                with torch.autocast(a.device, dtype=torch.bfloat16, enabled=a.dtype == "bf16"):
                    logits = m(ids)
                F.cross_entropy(logits.float().view(-1, logits.shape[-1]), tgt.view(-1)).backward()
                if opt is not None:
                    opt.step()
            loss.item()
        key = "self_cuda_time_total" if a.device == "cuda" else "self_cpu_time_total"
        print(prof.key_averages().table(sort_by=key, row_limit=18, max_name_column_width=60))
    kind = "train step (fwd+bwd+AdamW)" if opt is not None else "forward+backward"
    where = f"{torch.cuda.get_device_name()} {a.dtype}" if a.device == "cuda" else f"{a.threads} threads" + (" bf16" if a.dtype == "bf16" else "")
    print(f"pytorch: {a.steps * a.batch * a.seq / secs:.1f} tokens/s {kind} ({where}, "
          f"{n} parameters, torch {torch.__version__}, {1e3 * secs / max(a.steps, 1):.1f} ms/step)")


if __name__ == "__main__":
    main()
