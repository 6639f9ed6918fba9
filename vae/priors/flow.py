"""``flow``: a normalizing flow p(z | gamma) fitted to the latent means (:class:`FlowPrior`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vae.priors.base import LatentPrior, PriorError, PriorSpec, _check_seed

FLOW_KINDS = ("maf", "nsf")


class FlowPrior(LatentPrior):
    """A normalizing flow p(z | gamma) on the latent means (zuko).

    The latent means are standardized per dimension (training mean and standard
    deviation, stored) and the context is the standardized gamma. Training: Adam,
    mini-batches shuffled by a seeded torch generator, negative log-likelihood; the
    state with the lowest validation loss is kept (``validation`` given to
    :meth:`fit`, else a seeded 10 % of the training points is held out), with early
    stopping after ``patience`` epochs without improvement.

    Args:
        kind: ``maf`` (affine autoregressive / coupling) or ``nsf`` (rational-quadratic
            spline, Durkan et al. 2019).
        transforms: number of transforms.
        hidden: hidden widths of each transform's network.
        passes: 2 (default) makes each transform a coupling layer (one pass to
            sample); None a fully autoregressive one (D passes to sample).
        bins: spline bins (``nsf``).
        epochs, batch_size, lr, patience: optimisation.
        seed: seed of the initialisation, shuffling and held-out split.
    """

    name = "flow"
    interpolates = True

    def __init__(self, kind: str = "maf", transforms: int = 6, hidden: tuple[int, ...] = (128, 128),
                 passes: int | None = 2, bins: int = 8, epochs: int = 60, batch_size: int = 512,
                 lr: float = 1e-3, patience: int = 8, seed: int = 0) -> None:
        super().__init__()
        if kind not in FLOW_KINDS:
            raise PriorError(f"kind: must be one of {', '.join(FLOW_KINDS)}, got {kind!r}")
        ints = {"transforms": transforms, "bins": bins, "epochs": epochs,
                "batch_size": batch_size}
        for k, v in ints.items():
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise PriorError(f"{k}: must be a positive integer, got {v!r}")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise PriorError(f"patience: must be an integer >= 0, got {patience!r}")
        if passes is not None and (isinstance(passes, bool) or not isinstance(passes, int)
                                   or passes < 2):
            raise PriorError(f"passes: must be an integer >= 2 or None, got {passes!r}")
        try:
            hidden = tuple(int(h) for h in hidden)
        except (TypeError, ValueError):
            raise PriorError(f"hidden: must be a list of positive integers, got {hidden!r}"
                             ) from None
        if not hidden or min(hidden) < 1:
            raise PriorError(f"hidden: must be a list of positive integers, got {hidden!r}")
        if not isinstance(lr, int | float) or not (math.isfinite(lr) and lr > 0):
            raise PriorError(f"lr: must be a positive number, got {lr!r}")
        self.kind, self.transforms, self.hidden = kind, transforms, hidden
        self.passes, self.bins = passes, bins
        self.epochs, self.batch_size, self.lr = epochs, batch_size, float(lr)
        self.patience, self.seed = patience, _check_seed(seed)
        self.flow = None
        self.z_mean = np.zeros(0)
        self.z_std = np.zeros(0)
        self.g_mean = 0.0
        self.g_std = 1.0

    def params(self) -> dict[str, Any]:
        return {"kind": self.kind, "transforms": self.transforms, "hidden": list(self.hidden),
                "passes": self.passes, "bins": self.bins, "epochs": self.epochs,
                "batch_size": self.batch_size, "lr": self.lr, "patience": self.patience,
                "seed": self.seed}

    def _build(self):
        import torch
        import zuko

        kw: dict[str, Any] = {"transforms": self.transforms, "hidden_features": self.hidden}
        if self.passes is not None:
            kw["passes"] = self.passes
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            if self.kind == "nsf":
                return zuko.flows.NSF(self.latent_dim, 1, bins=self.bins, **kw)
            return zuko.flows.MAF(self.latent_dim, 1, **kw)

    def _standardize(self, mu: np.ndarray, gamma: np.ndarray):
        import torch

        x = (np.asarray(mu, np.float64) - self.z_mean) / self.z_std
        c = (np.asarray(gamma, np.float64) - self.g_mean) / self.g_std
        return (torch.as_tensor(x, dtype=torch.float32),
                torch.as_tensor(c[:, None], dtype=torch.float32))

    def _fit(self, mu, logvar, gamma, *, validation, progress) -> None:
        import torch
        from tqdm.auto import tqdm

        mu = np.asarray(mu, np.float64)
        if validation is None:
            rng = np.random.default_rng(self.seed)
            perm = rng.permutation(mu.shape[0])
            n_val = max(1, mu.shape[0] // 10) if mu.shape[0] > 1 else 0
            val_idx, tr_idx = perm[:n_val], perm[n_val:]
            mu_val, g_val = mu[val_idx], gamma[val_idx]
            mu, gamma = mu[tr_idx], gamma[tr_idx]
        else:
            mu_val = np.asarray(validation[0], np.float64)
            g_val = np.asarray(validation[1], np.float64)
        self.z_mean = mu.mean(axis=0)
        self.z_std = mu.std(axis=0)
        self.z_std[self.z_std == 0] = 1.0
        gam = np.asarray(self.gammas)
        self.g_mean = float(gam.mean())
        self.g_std = float(gam.std()) if gam.size > 1 and gam.std() > 0 else 1.0
        x, c = self._standardize(mu, gamma)
        xv, cv = self._standardize(mu_val, g_val) if len(mu_val) else (None, None)
        flow = self._build()
        opt = torch.optim.Adam(flow.parameters(), lr=self.lr)
        gen = torch.Generator().manual_seed(self.seed)
        best, best_state, best_epoch, history = math.inf, None, 0, []

        def nll(xb, cb) -> float:
            with torch.no_grad():
                return float(-flow(cb).log_prob(xb).mean())

        bar = tqdm(range(1, self.epochs + 1), desc="fit flow prior", unit="epoch",
                   disable=not progress, dynamic_ncols=True)
        for epoch in bar:
            flow.train()
            perm = torch.randperm(x.shape[0], generator=gen)
            total = 0.0
            for a in range(0, x.shape[0], self.batch_size):
                b = perm[a:a + self.batch_size]
                loss = -flow(c[b]).log_prob(x[b]).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * b.numel()
            flow.eval()
            train_nll = total / x.shape[0]
            val_nll = nll(xv, cv) if xv is not None else train_nll
            history.append({"epoch": epoch, "train_nll": train_nll, "val_nll": val_nll})
            bar.set_postfix_str(f"val nll {val_nll:.3f}")
            if val_nll < best:
                best, best_epoch = val_nll, epoch
                best_state = {k: v.detach().clone() for k, v in flow.state_dict().items()}
            elif self.patience and epoch - best_epoch >= self.patience:
                break
        if best_state is not None:
            flow.load_state_dict(best_state)
        flow.eval()
        self.flow = flow
        self.fit_info = {"best_epoch": best_epoch, "best_val_nll": best,
                         "epochs_run": len(history), "history": history,
                         "n_train": int(x.shape[0]), "n_val": int(len(mu_val)),
                         "n_parameters": int(sum(p.numel() for p in flow.parameters()))}

    def log_prob(self, z: np.ndarray, gamma: np.ndarray | float) -> np.ndarray:
        """log p(z | gamma) (M,) in the latent space's own units (the Jacobian of the
        standardization included)."""
        import torch

        self._require_fitted()
        z = np.asarray(z, np.float64)
        g = np.broadcast_to(np.asarray(gamma, np.float64), (z.shape[0],))
        x, c = self._standardize(z, g)
        with torch.no_grad():
            lp = self.flow(c).log_prob(x).double().numpy()
        return lp - float(np.log(self.z_std).sum())

    def _sample(self, n, gamma, rng) -> np.ndarray:
        import torch

        g = np.full(n, gamma, np.float64) if gamma is not None else self._mixture_gammas(n, rng)
        torch_seed = int(rng.integers(0, 2**62))
        _, c = self._standardize(np.zeros((n, self.latent_dim)), g)
        out = np.empty((n, self.latent_dim))
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(torch_seed)
            for a in range(0, n, 8192):
                cb = c[a:a + 8192]
                out[a:a + cb.shape[0]] = self.flow(cb).sample().double().numpy()
        return out * self.z_std + self.z_mean

    def _arrays(self) -> dict[str, np.ndarray]:
        out = {"z_mean": self.z_mean, "z_std": self.z_std,
               "g_norm": np.array([self.g_mean, self.g_std])}
        for k, v in self.flow.state_dict().items():
            out[f"flow/{k}"] = v.detach().cpu().numpy()
        return out

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        import torch

        self.z_mean, self.z_std = arrays["z_mean"], arrays["z_std"]
        self.g_mean, self.g_std = (float(v) for v in arrays["g_norm"])
        flow = self._build()
        state = {k[5:]: torch.from_numpy(np.array(v)) for k, v in arrays.items()
                 if k.startswith("flow/")}
        try:
            flow.load_state_dict(state)
        except RuntimeError as exc:
            raise PriorError(f"flow weights do not match the saved settings "
                             f"({str(exc).splitlines()[0]})") from None
        flow.eval()
        self.flow = flow

    @property
    def fitted(self) -> bool:
        return self.latent_dim > 0 and self.flow is not None


def _same(v):
    return v


PRIOR = PriorSpec(
    "flow", FlowPrior, label="normalizing flow",
    description="normalizing flow p(z | gamma) fitted to the latent means", color="#1f77b4",
    settings=(("kind", "flow_kind", _same), ("transforms", "flow_transforms", _same),
              ("hidden", "flow_hidden", tuple), ("passes", "flow_passes", _same),
              ("epochs", "flow_epochs", _same), ("batch_size", "flow_batch_size", _same),
              ("lr", "flow_lr", float), ("patience", "flow_patience", _same)),
    seeded=True, order=50)
