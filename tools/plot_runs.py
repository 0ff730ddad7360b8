"""Plot Strata runs' metrics.jsonl files (loss, val_loss, tokens/s) into one PNG."""
import argparse
import json
import os
import sys


def load(run_dir):
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        sys.exit(f"plot: {path} does not exist")
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                sys.exit(f"plot: {path}:{n}: not JSON: {e}")
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("runs", nargs="+", help="run directories (each with metrics.jsonl)")
    ap.add_argument("--out", default="plot.png")
    ap.add_argument("--title", default="")
    args = ap.parse_args()
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot: matplotlib is missing from the venv; run scripts/setup")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for run in args.runs:
        rows = load(run)
        name = os.path.basename(os.path.normpath(run))
        steps = [r["step"] for r in rows if r.get("loss") is not None]
        losses = [r["loss"] for r in rows if r.get("loss") is not None]
        (line,) = axes[0].plot(steps, losses, alpha=0.5, label=f"{name} train")
        val = [(r["step"], r["val_loss"]) for r in rows if r.get("val_loss") is not None]
        if val:
            axes[0].plot(*zip(*val), "o-", color=line.get_color(), label=f"{name} val")
        tps = [(r["step"], r["tokens_per_s"]) for r in rows if r.get("tokens_per_s") is not None]
        if tps:
            axes[1].plot(*zip(*tps), color=line.get_color(), label=name)
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("loss (nats/token)")
    axes[0].legend()
    axes[0].grid(alpha=0.3)
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("tokens/s")
    axes[1].legend()
    axes[1].grid(alpha=0.3)
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"plot: wrote {args.out}")


if __name__ == "__main__":
    main()
