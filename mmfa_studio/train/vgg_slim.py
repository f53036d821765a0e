"""Write a slim copy of the perceptual loss's VGG16 trunk (only the stages used, half precision).

    python -m mmfa_studio.train.vgg_slim OUT.safetensors [--stages 4] [--source vgg_shift_tolerant.pth]

stlpips' file is 59 MB (five stages + LPIPS heads, fp32); stages 1-4 in fp16 are ~15 MB, stages 1-3 ~3.5 MB —
small enough to carry to a machine without stlpips-pytorch. Pass the result as ``--vgg-weights``.
"""

from __future__ import annotations

import argparse
import sys

import torch

from ..perceptual import VGGTrunk, find_vgg_weights


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmfa_studio.train.vgg_slim", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="output .safetensors path")
    parser.add_argument("--stages", type=int, default=4, choices=[1, 2, 3, 4, 5], help="keep VGG stages 1..N")
    parser.add_argument("--source", default=None, help="vgg_shift_tolerant.pth (default: the stlpips package's)")
    parser.add_argument("--dtype", choices=["float16", "bfloat16", "float32"], default="float16")
    args = parser.parse_args(argv)
    if not args.out.endswith(".safetensors"):
        print("vgg_slim: error: the output must end in .safetensors", file=sys.stderr)
        return 2
    try:
        source = find_vgg_weights(args.source)
    except FileNotFoundError as exc:
        print(f"vgg_slim: error: {exc}", file=sys.stderr)
        return 2
    if source is None:
        print("vgg_slim: error: stlpips-pytorch is not installed; pass --source PATH", file=sys.stderr)
        return 2
    trunk = VGGTrunk(tuple(range(1, args.stages + 1)))
    trunk.load_weights(source)
    trunk.save_slim(args.out, getattr(torch, args.dtype))
    print(f"wrote {args.out}: VGG16 stages 1-{args.stages} ({args.dtype}) from {source}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
