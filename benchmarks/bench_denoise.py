"""Denoising table: do VAEs move corrupted configurations back towards the clean ones?

    python benchmarks/bench_denoise.py --checkpoint default=runs/a/best.pt \\
        denoise=runs/b/best.pt [--n 300] [--figure denoise.png] [--markdown denoise.md]

For each checkpoint, ``--n`` clean configurations of its test split (re-read from its
training files and checked against its fingerprint) are corrupted at the levels of
:data:`pipelines.anomaly.denoise.DEFAULT_LEVELS`, decoded, reconstructed (thermal
placement at the data's T) and compared with the clean originals
(:func:`pipelines.anomaly.denoise.denoise_table`). Prints one Markdown table per model
and the wall time; ``--figure`` draws examples for the first model.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def _test_split(model, checkpoint: Path, n: int, seed: int):
    """n clean test configurations of the model's split, their gamma, and the attributes
    of its first training file (temperature, potential)."""
    from mcsim.io import read_dataset
    from pipelines.anomaly.run import load_in_distribution

    ind = load_in_distribution(model, checkpoint, None)  # re-read and fingerprint-checked
    te = ind.split.test
    pick = np.sort(np.random.default_rng(seed).choice(te, size=min(n, te.size),
                                                      replace=False))
    return ind.positions[pick], ind.gamma[pick], read_dataset(ind.files[0]).attrs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", nargs="+", required=True, metavar="LABEL=PATH")
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-starts", type=int, default=12)
    p.add_argument("--figure")
    p.add_argument("--markdown")
    args = p.parse_args()

    import torch

    from mcsim.potentials import Potential
    from pipelines.anomaly.denoise import denoise_figure, denoise_markdown, denoise_table
    from vae.checkpoint import load_model

    torch.set_num_threads(1)
    parts = []
    for i, item in enumerate(args.checkpoint):
        label, _, path = item.rpartition("=")
        ck = Path(path)
        model = load_model(ck)
        clean, gamma, attrs = _test_split(model, ck, args.n, args.seed)
        temperature = float(attrs.get("temperature", 0.75))
        cutoff = attrs.get("cutoff", 3.0)
        potential = Potential.parse(str(attrs.get("potential", "lj")),
                                    cutoff=None if cutoff in ("none", None) else float(cutoff))
        t0 = time.perf_counter()
        rows, ex = denoise_table(model, clean, gamma, potential=potential,
                                 temperature=temperature, seed=args.seed,
                                 n_starts=args.n_starts, keep_examples=1 if i == 0 else 0)
        wall = time.perf_counter() - t0
        lc = model.config.loss
        title = (f"### {label or ck}: {ck} ({model.config.model.arch}, latent "
                 f"{model.model.latent_dim}, trained with denoise = {lc.denoise:g} σ)")
        md = denoise_markdown(rows, title)
        print(md)
        print(f"({len(clean)} test configurations, {wall:.0f} s wall)\n")
        parts.append(md)
        if i == 0 and args.figure:
            fig = denoise_figure(ex, float(model.info.box))
            fig.savefig(args.figure, dpi=120)
    if args.markdown:
        Path(args.markdown).write_text("\n".join(parts))


if __name__ == "__main__":
    main()
