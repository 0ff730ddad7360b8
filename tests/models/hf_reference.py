#!/usr/bin/env python3
"""Logits of a Hugging Face model directory written by Strata, for tests/models/test_hf.cpp.

usage: hf_reference.py <model dir> <inputs.safetensors> <out.safetensors> [<model dir> <inputs> <out> ...]
inputs: "ids" int64 [B, T], optional "mask" int64 [B, T] (1 = real token).
Writes "logits" float32 [B, T, V] computed by transformers' GPT2LMHeadModel, LlamaForCausalLM
or BertForMaskedLM (from config.json's architectures) in float32, eval mode.
Exit code 3 when transformers or safetensors is not installed (the test then skips).
"""
import json
import sys

try:
    import torch
    import transformers
    from safetensors.torch import load_file, save_file
except ImportError as e:  # pragma: no cover
    print(f"hf_reference: {e}", file=sys.stderr)
    sys.exit(3)


def run(model_dir, inputs_path, out_path):
    arch = json.load(open(f"{model_dir}/config.json"))["architectures"][0]
    cls = getattr(transformers, arch)
    kwargs = {"dtype": torch.float32}
    if arch != "GPT2LMHeadModel":
        kwargs["attn_implementation"] = "eager"
    model = cls.from_pretrained(model_dir, **kwargs).eval()
    inputs = load_file(inputs_path)
    args = {"input_ids": inputs["ids"]}
    if "mask" in inputs:
        args["attention_mask"] = inputs["mask"]
    with torch.no_grad():
        logits = model(**args).logits.float().contiguous()
    save_file({"logits": logits}, out_path)
    print(f"hf_reference: {arch} transformers {transformers.__version__} logits {tuple(logits.shape)}")


def main():
    args = sys.argv[1:]
    if not args or len(args) % 3:
        sys.exit(__doc__)
    for i in range(0, len(args), 3):
        run(*args[i : i + 3])


if __name__ == "__main__":
    main()
