"""Refitting the encoder of a physical VAE with its decoder frozen (tried; not adopted).

    python benchmarks/bench_encoder_refit.py --run RUN --out DIR [--loss local|full]
        [--match-slots] [--epochs 10] [--lr 3e-4]

Target 3 of the physical VAE judges reconstructions decode(mu_z(x)), and mu_z misses
where per-configuration refinement (:mod:`vae.refine`) succeeds. This asks whether the
encoder can learn what refinement finds: starting from a trained run (``RUN/best.pt``,
a decoder that places particles), the decoder is frozen and the encoder (convolutions
and latent head) is trained further on the run's loss evaluated at z = mu_z, with no
latent sampling, which is what decode(mu_z) is judged on:

* ``--loss local``: the per-configuration terms only, as refinement uses them
  (:func:`vae.refine.local_loss_config`), with ``--match-slots`` optional;
* ``--loss full``: the run's whole loss, the batch-distribution terms included.

The log-variance enters the KL term detached (the refit moves means only). Batch norm
keeps its running statistics (eval mode). Every epoch prints the training loss, the
validation loss at mu_z and the validation target-3 ratio per gamma: the energy W1
between the validation configurations and their decode(mu_z) placed thermally, over
the same W1 for the validation shapes themselves placed the same way (the exact
control). The epoch with the lowest mean ratio (``--keep ratio``, the default; epoch 0:
the run as trained) or the lowest validation loss (``--keep loss``) is written to
``DIR/<run name>/best.pt`` with its ``metrics.json``, so that ``bench_physical_vae.py
--out DIR --reuse`` judges it on the test split like any run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import wasserstein_distance
from threadpoolctl import threadpool_limits

from mcsim.config import SimConfig
from mcsim.potentials import total_energy
from mcsim.sampler import threads as numba_threads
from reconstruct.placement import place
from vae.checkpoint import load_checkpoint, load_model, save_checkpoint
from vae.data import coordinates, length_scale
from vae.loss import vae_loss
from vae.models.base import VAEOutput
from vae.physical import pair_distance_matrix
from vae.refine import local_loss_config
from vae.training import prepare_data, test_metrics


def _energy_w1(shapes: np.ndarray, e_ref: np.ndarray, gamma: float, box: float,
               temperature: float, potential) -> float:
    """W1 between the energies of ``shapes`` (any rigid frame, sigma) placed thermally
    and the reference energies ``e_ref``."""
    placed = place(shapes, box, "thermal", gamma=gamma, temperature=temperature,
                   seed=0).positions
    return wasserstein_distance(total_energy(placed, gamma, potential), e_ref)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", required=True, type=Path, help="a trained run's folder")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--loss", choices=("local", "full"), default="local")
    ap.add_argument("--match-slots", action="store_true")
    ap.add_argument("--keep", choices=("ratio", "loss"), default="ratio",
                    help="which epoch to write: lowest mean validation ratio or loss")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--grad-clip", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    with numba_threads(args.threads), threadpool_limits(limits=args.threads):
        run(args)


def run(args) -> None:
    ck = load_checkpoint(args.run / "best.pt")
    tv = load_model(args.run / "best.pt")
    cfg, model, split = tv.config, tv.model, tv.split
    if not tv.places_particles:
        raise SystemExit(f"{args.run}: the refit needs a decoder that places particles")
    data = prepare_data(cfg, list(tv.info.files))
    box = data.info.box
    scale = length_scale(cfg.data.scaling, box)
    sim = SimConfig.from_file(tv.info.files[0])
    x_all = torch.as_tensor(data.x)
    g_all = torch.as_tensor(data.gamma, dtype=torch.float32)
    c_all = torch.as_tensor(coordinates(data.positions, box, cfg.data.sort, cfg.data.scaling))
    loss_cfg = (dataclasses.replace(cfg.loss, kl_warmup_epochs=0, match_slots=args.match_slots)
                if args.loss == "full" else local_loss_config(cfg.loss, args.match_slots))
    encoder = [*model.encoder.parameters(), *model.to_latent.parameters()]
    mine = {id(p) for p in encoder}
    for p in model.parameters():
        p.requires_grad_(id(p) in mine)
    model.eval()  # batch norm: running statistics, not the batch's
    train_idx = torch.as_tensor(split.train)
    val_idx = torch.as_tensor(split.val)
    n_batches = math.ceil(len(train_idx) / args.batch_size)
    opt = torch.optim.Adam(encoder, lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs * n_batches,
                                                       eta_min=args.lr / 100)
    step = [0]

    def loss_at_mu(idx):
        xb, cb, gb = x_all[idx], c_all[idx], g_all[idx]
        mu, logvar = model.encode(xb)
        coords = model.decode_coords(mu, gb)
        x_hat = pair_distance_matrix(coords).unsqueeze(1)
        step[0] += 1
        return vae_loss(VAEOutput(x_hat, mu, logvar.detach(), mu, None, coords), xb, loss_cfg,
                        recon=cfg.recon, scale=scale, coords=cb, gamma=gb, box=box,
                        placement_seed=step[0])

    def val_loss() -> float:
        with torch.no_grad():
            chunks = [val_idx[a:a + 512] for a in range(0, len(val_idx), 512)]
            return sum(loss_at_mu(c).total.item() * len(c) for c in chunks) / len(val_idx)

    pos_val = np.asarray(data.positions[split.val], dtype=np.float64)
    gam_val = np.asarray(data.gamma[split.val])
    groups = {}  # gamma -> (validation rows, their energies, the exact control's W1)
    for gam in np.unique(gam_val):
        r = gam_val == gam
        e_ref = total_energy(pos_val[r], float(gam), sim.potential)
        groups[float(gam)] = (r, e_ref, _energy_w1(pos_val[r], e_ref, float(gam), box,
                                                   sim.temperature, sim.potential))

    def score() -> dict[float, float]:
        """Validation target-3 ratio per gamma (module docstring)."""
        with torch.no_grad():
            mu, _ = model.encode(x_all[val_idx])
            c = model.decode_coords(mu, g_all[val_idx]).double().numpy() * scale
        return {gam: _energy_w1(c[r], e_ref, gam, box, sim.temperature, sim.potential) / exact
                for gam, (r, e_ref, exact) in groups.items()}

    def show(epoch, train, val, rat, seconds):
        cells = " / ".join(f"{v:.2f}" for v in rat.values())
        print(f"epoch {epoch:3d}  train {train:.5f}  val {val:.5f}  val target-3 ratio "
              f"{cells} (mean {np.mean(list(rat.values())):.2f})  {seconds:.0f} s", flush=True)

    print(f"{args.run.name}: encoder refit, loss {args.loss}, match_slots {args.match_slots}, "
          f"{args.epochs} epochs at lr {args.lr:g}; gammas "
          f"{' / '.join(f'{g:g}' for g in groups)}", flush=True)

    def criterion(rat, loss):
        return float(np.mean(list(rat.values()))) if args.keep == "ratio" else loss

    rat, loss = score(), val_loss()
    show(0, math.nan, loss, rat, 0.0)
    best, best_epoch = criterion(rat, loss), 0
    best_state = {k: v.clone() for k, v in model.state_dict().items()}
    gen = torch.Generator().manual_seed(args.seed)
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        perm = train_idx[torch.randperm(len(train_idx), generator=gen)]
        total = 0.0
        for b in range(n_batches):
            parts = loss_at_mu(perm[b * args.batch_size:(b + 1) * args.batch_size])
            opt.zero_grad(set_to_none=True)
            parts.total.backward()
            torch.nn.utils.clip_grad_norm_(encoder, args.grad_clip)
            opt.step()
            sched.step()
            total += parts.total.item()
        rat, loss = score(), val_loss()
        show(epoch, total / n_batches, loss, rat, time.perf_counter() - t0)
        if criterion(rat, loss) < best:
            best, best_epoch = criterion(rat, loss), epoch
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    for p in model.parameters():
        p.requires_grad_(True)
    out = args.out / args.run.name
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / "best.pt", model, cfg, tv.info, split, epoch=ck.epoch,
                    history=ck.history)
    metrics = json.loads((args.run / "metrics.json").read_text())
    metrics.update(test_metrics(model, data, cfg, split), refit_epoch=best_epoch)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    print(f"kept epoch {best_epoch} (validation {args.keep} {best:.4g}); test MSE "
          f"{metrics['test_recon']:.5f}, matched {metrics.get('test_matched_mse', math.nan):.5f}; "
          f"written to {out}", flush=True)


if __name__ == "__main__":
    main()
