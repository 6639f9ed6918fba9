"""Default VAE vs the study's conv VAE: time per epoch, test MSE at equal epochs, probe R^2.

Quality: both models are trained with the same data, split, loss (MSE + 3.5e-4 * mean
KL), optimiser (Adam 1e-3, batch 128), seed and number of epochs (no early stopping);
the test MSE is that of the model after the last epoch, with z = mu_z.

Speed: the training step (forward, loss, backward, Adam step) is timed for both
architectures in the same process, interleaved round by round (one full epoch of the
default, then ``--study-batches`` batches of the study net, repeated ``--rounds`` times),
so that both see the same machine load; the study's time per epoch is its median time
per batch times the number of batches in an epoch. The ratio of the two is the
speed-up. Times are also scaled to 32,000 matrices per epoch (the study's training-set
size) for comparison with docs/reference.md section 4.

Training the study net for the quality comparison takes ~4 min per epoch on one thread;
``--study train`` does it, ``--study time`` (the default) only times it and takes its
test MSE from ``--study-mse`` (a value measured before, quoted as such), ``--study skip``
leaves it out.

Usage::

    python benchmarks/bench_vae.py --data /work/data/study_4gamma.h5 --epochs 4 \\
        --threads 1 [--study train|time|skip] [--study-mse 0.00313] [--json out.json]

This is a benchmark, not a test: run it by hand and quote ratios.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from vae.checkpoint import load_model
from vae.config import DataConfig, LossConfig, ModelConfig, RunConfig, TrainConfig
from vae.latent import encode_latent, gamma_probe
from vae.loss import vae_loss
from vae.models import build_model, count_parameters
from vae.training import PreparedData, evaluate, prepare_data, train

STUDY_TRAIN_SIZE = 32_000


def time_steps(cfg: RunConfig, data: PreparedData, n_batches: int, seed: int = 0) -> float:
    """Median seconds per training step (forward, loss, backward, Adam step) over
    ``n_batches`` minibatches of ``cfg.train.batch_size`` training matrices, after one
    untimed warm-up step, for a freshly initialised model of ``cfg``."""
    model = build_model(cfg, data.info.n_particles, data.info.box, seed=seed)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    x = torch.as_tensor(data.x[data.split.train])
    g_perm, g_noise = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    perm = torch.randperm(len(x), generator=g_perm)
    bs = cfg.train.batch_size
    n_total = math.ceil(len(x) / bs)
    times = []
    for b in range(n_batches + 1):
        xb = x[perm[(b % n_total) * bs:((b % n_total) + 1) * bs]]
        t0 = time.perf_counter()
        parts = vae_loss(model(xb, generator=g_noise), xb, cfg.loss, recon=cfg.recon)
        opt.zero_grad(set_to_none=True)
        parts.total.backward()
        opt.step()
        parts.total.item()
        if b:  # the first step is a warm-up
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def quality(cfg: RunConfig, data: PreparedData, run_dir: Path, progress: bool) -> dict:
    """Train ``cfg`` (no early stopping) and evaluate the model after the last epoch."""
    t0 = time.perf_counter()
    res = train(cfg, data, run_dir, overwrite=True, progress=progress)
    wall = time.perf_counter() - t0
    last = load_model(run_dir / "last.pt")
    x = torch.as_tensor(data.x)
    test = evaluate(last.model, x[data.split.test], cfg)
    mu, _ = encode_latent(last.model, data.x)
    tr, te = data.split.train, data.split.test
    probe = gamma_probe(mu[tr], data.gamma[tr], mu[te], data.gamma[te])
    return {
        "test_mse": test["recon"], "test_kl_per_dim": test["kl"],
        "val_mse_per_epoch": [h["val_recon"] for h in res.history],
        "epoch_time_s_in_training": [h["epoch_time_s"] for h in res.history],
        "probe_r2_test": probe.r2, "wall_s": wall,
    }


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    base = RunConfig(DataConfig(max_per_gamma=args.max_per_gamma), ModelConfig(), LossConfig(),
                     TrainConfig(epochs=args.epochs, patience=0, seed=args.seed))
    data = prepare_data(base, args.data)
    n_train = int(data.split.train.size)
    n_batches = math.ceil(n_train / base.train.batch_size)
    print(f"data: {data.info.n_configs} configurations (gammas {data.info.gammas}), "
          f"train {n_train}, val {data.split.val.size}, test {data.split.test.size}; "
          f"{args.epochs} epochs, batch {base.train.batch_size}, {args.threads} thread(s), "
          f"torch {torch.__version__}, {platform.processor() or platform.machine()}",
          flush=True)
    cfgs = {"default": base,
            "study": replace(base, model=ModelConfig(arch="study"))}
    out_root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench_vae_"))
    results: dict = {"n_configs": data.info.n_configs, "n_train": n_train,
                     "batches_per_epoch": n_batches, "epochs": args.epochs,
                     "threads": args.threads, "default_arch": base.model.arch, "archs": {}}
    for name, cfg in cfgs.items():
        model = build_model(cfg, data.info.n_particles, data.info.box)
        results["archs"][name] = {"arch": cfg.model.arch, "parameters": count_parameters(model)}

    # speed: interleaved rounds under the same load
    if args.study != "skip":
        per_round = []
        for r in range(args.rounds):
            t_def = time_steps(cfgs["default"], data, n_batches, seed=r)
            t_study = time_steps(cfgs["study"], data, args.study_batches, seed=r)
            per_round.append((t_def, t_study))
            print(f"round {r + 1}: default {t_def * n_batches:.2f} s/epoch, study "
                  f"{t_study * n_batches:.1f} s/epoch, ratio {t_study / t_def:.1f}", flush=True)
        t_def = float(np.median([p[0] for p in per_round]))
        t_study = float(np.median([p[1] for p in per_round]))
        for name, t in (("default", t_def), ("study", t_study)):
            results["archs"][name].update(
                step_time_s=t, epoch_time_s=t * n_batches,
                epoch_time_32k_s=t * n_batches * STUDY_TRAIN_SIZE / n_train)
        results["speedup"] = t_study / t_def
        results["speed_rounds"] = per_round

    # quality at equal epochs
    if not args.no_train:
        results["archs"]["default"].update(
            quality(cfgs["default"], data, out_root / "default", not args.no_progress))
    if args.study == "train":
        results["archs"]["study"].update(
            quality(cfgs["study"], data, out_root / "study", not args.no_progress))
    elif args.study == "time" and args.study_mse is not None:
        results["archs"]["study"].update(test_mse=args.study_mse, test_mse_source="--study-mse")

    print(f"\n| arch | params | s/epoch ({n_train} train) | s per 32k | "
          f"test MSE after {args.epochs} epochs | probe R^2 |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in results["archs"].items():
        def f(key, fmt, r=r):
            return format(r[key], fmt) if key in r else "-"
        note = " (given)" if r.get("test_mse_source") else ""
        print(f"| {name} ({r['arch']}) | {r['parameters']:,d} | {f('epoch_time_s', '.2f')} | "
              f"{f('epoch_time_32k_s', '.1f')} | {f('test_mse', '.5f')}{note} | "
              f"{f('probe_r2_test', '.3f')} |")
    if "speedup" in results:
        print(f"\nspeed-up (study / default time per training step, interleaved, median of "
              f"{args.rounds} rounds): {results['speedup']:.1f}x")
    d, s = results["archs"]["default"], results["archs"]["study"]
    if "test_mse" in d and "test_mse" in s:
        results["mse_ratio_default_over_study"] = d["test_mse"] / s["test_mse"]
        print(f"test MSE default / study after {args.epochs} epochs: "
              f"{results['mse_ratio_default_over_study']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", nargs="+", required=True)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--max-per-gamma", type=int, default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--study", choices=("train", "time", "skip"), default="time",
                   help="train the study net too (slow), only time it, or leave it out")
    p.add_argument("--study-mse", type=float, default=None,
                   help="with --study time: the study net's test MSE measured before")
    p.add_argument("--study-batches", type=int, default=40,
                   help="study-net training steps timed per round")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    p.add_argument("--no-train", action="store_true", help="timing only")
    p.add_argument("--out", default=None, help="keep the runs here (default: a temp dir)")
    p.add_argument("--json", default=None, help="write the results as JSON")
    p.add_argument("--no-progress", action="store_true")
    run(p.parse_args())


if __name__ == "__main__":
    main()
