"""Default conv VAE vs the study's conv VAE: time per epoch, test MSE, gamma-probe R^2.

Both models are trained on the same data, split, loss (MSE + 3.5e-4 * mean KL), optimiser
(Adam 1e-3, batch 128), seed and number of epochs (no early stopping); the test MSE is
that of the model after the last epoch, with z = mu_z. Time per epoch is the training
part only (no validation), also scaled to 32,000 matrices (the study's training-set
size) for comparison with REFERENCE.md section 4 (~150 s per epoch for the study net).

Usage::

    python benchmarks/bench_vae.py --data /work/data/study_4gamma.h5 --epochs 5 \
        --max-per-gamma 2500 --threads 1 [--out bench_runs] [--json results.json]

This is a benchmark, not a test: run it by hand on a quiet machine and quote ratios.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vae.checkpoint import load_model
from vae.config import DataConfig, LossConfig, ModelConfig, RunConfig, TrainConfig
from vae.latent import encode_latent, gamma_probe
from vae.models import count_parameters
from vae.training import evaluate, prepare_data, train

STUDY_TRAIN_SIZE = 32_000


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    base = RunConfig(DataConfig(max_per_gamma=args.max_per_gamma),
                     ModelConfig(), LossConfig(),
                     TrainConfig(epochs=args.epochs, patience=0, seed=args.seed))
    data = prepare_data(base, args.data)
    n_train = int(data.split.train.size)
    print(f"data: {data.info.n_configs} configurations (gammas {data.info.gammas}), "
          f"train {n_train}, val {data.split.val.size}, test {data.split.test.size}; "
          f"{args.epochs} epochs, {args.threads} thread(s), torch {torch.__version__}, "
          f"{platform.processor() or platform.machine()}", flush=True)
    out_root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench_vae_"))
    results = {"n_configs": data.info.n_configs, "n_train": n_train, "epochs": args.epochs,
               "threads": args.threads, "archs": {}}
    for arch in args.archs:
        cfg = RunConfig(base.data, ModelConfig(arch=arch), base.loss, base.train)
        t0 = time.perf_counter()
        res = train(cfg, data, out_root / arch, overwrite=True, progress=not args.no_progress)
        wall = time.perf_counter() - t0
        last = load_model(out_root / arch / "last.pt")  # the model after the last epoch
        x = torch.as_tensor(data.x)
        test = evaluate(last.model, x[data.split.test], cfg)
        mu, _ = encode_latent(last.model, data.x)
        probe = gamma_probe(mu[data.split.train], data.gamma[data.split.train],
                            mu[data.split.test], data.gamma[data.split.test])
        times = [h["epoch_time_s"] for h in res.history]
        r = {
            "parameters": count_parameters(last.model),
            "epoch_time_s": float(np.median(times)),
            "epoch_time_s_all": times,
            "epoch_time_32k_s": float(np.median(times)) * STUDY_TRAIN_SIZE / n_train,
            "test_mse": test["recon"],
            "test_kl_per_dim": test["kl"],
            "val_mse_per_epoch": [h["val_recon"] for h in res.history],
            "probe_r2_test": probe.r2,
            "wall_s": wall,
        }
        results["archs"][arch] = r
        print(f"{arch:>6}: {r['parameters']:>9,d} params, {r['epoch_time_s']:8.2f} s/epoch "
              f"({r['epoch_time_32k_s']:7.1f} s per 32k), test MSE {r['test_mse']:.5f}, "
              f"probe R^2 {r['probe_r2_test']:.3f}", flush=True)
    if {"conv", "study"} <= set(results["archs"]):
        c, s = results["archs"]["conv"], results["archs"]["study"]
        results["speedup"] = s["epoch_time_s"] / c["epoch_time_s"]
        results["mse_ratio_conv_over_study"] = c["test_mse"] / s["test_mse"]
        print(f"\n| arch | params | s/epoch | s per 32k | test MSE (after {args.epochs} ep.) "
              "| probe R^2 |")
        print("|---|---:|---:|---:|---:|---:|")
        for name in ("conv", "study"):
            r = results["archs"][name]
            print(f"| {name} | {r['parameters']:,d} | {r['epoch_time_s']:.2f} | "
                  f"{r['epoch_time_32k_s']:.1f} | {r['test_mse']:.5f} | "
                  f"{r['probe_r2_test']:.3f} |")
        print(f"\nspeed-up (study / conv time per epoch): {results['speedup']:.1f}x; "
              f"test MSE conv / study: {results['mse_ratio_conv_over_study']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", nargs="+", required=True)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--max-per-gamma", type=int, default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--archs", nargs="+", default=["conv", "study"])
    p.add_argument("--out", default=None, help="keep the runs here (default: a temp dir)")
    p.add_argument("--json", default=None, help="write the results as JSON")
    p.add_argument("--no-progress", action="store_true")
    run(p.parse_args())


if __name__ == "__main__":
    main()
