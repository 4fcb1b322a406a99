"""Measure a checkpoint for its model card and draw the README grid.

Writes `OUT/grid.png` (ten prompts x seeds 0-7, upscaled 2x, one row per
prompt) and prints a Markdown block with the numbers: VAE reconstruction PSNR
and codebook perplexity on fresh toy-world renders, and the prompt list.

    python scripts/model_card_figures.py --model weights/dalle-toy.safetensors \
        --data build/weights/toyworld-fresh --out docs
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
from dalle.model import SamplingSettings, TextToImage
from dalle.model.data import load_images, scan_folder, to_model_range
from dalle.model.encoding import encode_images, psnr
from PIL import Image, ImageDraw

# Ten prompts in English and Chinese; (h) marks a held-out combination.
PROMPTS = [
    ("orange dinosaur in a suit", True),
    ("一个穿着西服的橙色恐龙", True),
    ("a blue cat wearing a top hat", True),
    ("一个围着围巾的粉色机器人", True),
    ("a yellow rabbit wearing a crown", False),
    ("一个戴着墨镜的白色熊", False),
    ("a green frog with a scarf on a beach", False),
    ("一个穿着西装的灰色企鹅", False),
    ("a red bird in a hat", False),
    ("雪地里的一个戴着皇冠的紫色雪人", False),
]
SEEDS = range(8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="fresh toy-world renders, unseen in training")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--guidance-scale", type=float, default=SamplingSettings().guidance_scale)
    args = parser.parse_args()

    pipe = TextToImage.from_pretrained(args.model)
    vae = pipe.vae

    # 1. VAE reconstruction quality and codebook use on renders the VAE never saw.
    images = load_images(scan_folder(args.data), vae.config.image_size)
    codes = encode_images(vae, images)
    with torch.inference_mode():
        recon_psnr = psnr(vae.decode(codes), to_model_range(images))
    counts = torch.bincount(codes.flatten(), minlength=vae.config.codebook_size).float()
    probs = counts / counts.sum()
    perplexity = math.exp(-(probs[probs > 0] * probs[probs > 0].log()).sum().item())
    used = int((counts > 0).sum())

    # 2. The grid: one row per prompt, seeds 0-7 left to right.
    settings = SamplingSettings(guidance_scale=args.guidance_scale)
    started = time.monotonic()
    rows = []
    for prompt, _ in PROMPTS:
        rows.append(pipe.generate_with_seeds([prompt] * len(SEEDS), list(SEEDS), settings, batch_size=8))
    seconds = time.monotonic() - started
    size = vae.config.image_size * 2
    label = 24
    grid = Image.new("RGB", (label + size * len(SEEDS), size * len(rows)), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for r, row in enumerate(rows):
        draw.text((4, r * size + size // 2 - 6), str(r + 1), fill=(0, 0, 0))
        for c, image in enumerate(row):
            grid.paste(image.resize((size, size), Image.Resampling.NEAREST), (label + c * size, r * size))
    args.out.mkdir(parents=True, exist_ok=True)
    grid.save(args.out / "grid.png")

    print(f"- VAE reconstruction PSNR on {images.shape[0]} fresh renders: {recon_psnr:.2f} dB")
    print(f"- Codebook: {used} of {vae.config.codebook_size} entries used, perplexity {perplexity:.1f}")
    print(
        f"- Grid: {len(PROMPTS)} prompts x {len(SEEDS)} seeds in {seconds:.0f} s, "
        f"guidance {settings.guidance_scale}, temperature {settings.temperature}"
    )
    for i, (prompt, held_out) in enumerate(PROMPTS, start=1):
        print(f"{i}. {prompt}{' (held out)' if held_out else ''}")


if __name__ == "__main__":
    main()
