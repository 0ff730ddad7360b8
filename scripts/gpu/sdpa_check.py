#!/usr/bin/env python3
"""Diagnostic for scripts/gpu/check.sh: gradients of torch's scaled_dot_product_attention on CUDA in
fp32, against float64 on the CPU, for the layouts Strata's attention passes (q, k, v as transposed
views of [B, T, H, hd] projections, or contiguous), per backend and sequence length. Prints one line
per case with the relative error of dq, dk, dv."""
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def case(T, layout, backend, causal=True, B=3, H=4, hd=16):
    g = torch.Generator().manual_seed(T)
    x = [torch.randn(B, T, H * hd, generator=g, dtype=torch.float64) for _ in range(3)]
    up = torch.randn(B, H, T, hd, generator=g, dtype=torch.float64)

    def run(dev, dtype):
        leaves = [t.detach().clone().to(dev, dtype).requires_grad_(True) for t in x]
        qkv = [t.view(B, T, H, hd).transpose(1, 2) for t in leaves]
        if layout == "contiguous":
            qkv = [t.contiguous() for t in qkv]
        y = F.scaled_dot_product_attention(*qkv, is_causal=causal)
        (y * up.to(dev, dtype)).sum().backward()
        return y, [t.grad for t in leaves]

    ry, rg = run("cpu", torch.float64)
    try:
        with sdpa_kernel([backend]):
            cy, cg = run("cuda", torch.float32)
    except RuntimeError as e:
        return f"T={T:3d} {layout:10s} {backend.name:20s} not available ({str(e).splitlines()[0][:60]})"
    err = lambda a, b: ((a.double().cpu() - b).norm() / b.norm()).item()
    return (f"T={T:3d} {layout:10s} {backend.name:20s} y {err(cy, ry):.1e}  dq {err(cg[0], rg[0]):.1e}  "
            f"dk {err(cg[1], rg[1]):.1e}  dv {err(cg[2], rg[2]):.1e}")


if __name__ == "__main__":
    print("torch", torch.__version__, torch.cuda.get_device_name())
    for T in (24, 32, 100):
        for layout in ("view", "contiguous"):
            for backend in (SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH, SDPBackend.CUDNN_ATTENTION):
                print(case(T, layout, backend))
