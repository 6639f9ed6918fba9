"""The resource guard of the VAE layer: estimated memory of inputs and models, checked
before anything is allocated (see :func:`mcsim.clitools.check_memory`).

A model is built on PyTorch's ``meta`` device, which records shapes without allocating,
so the estimate holds for every architecture without knowing its layers.
"""

from __future__ import annotations

import math

import torch

from mcsim.clitools import UserError, check_memory
from vae.config import DataConfig, RunConfig
from vae.data import input_shape

__all__ = ["input_bytes", "model_parameters", "check_inputs_memory", "check_model_memory"]

#: bytes per parameter while training: float32 weights, gradients, two Adam moments
TRAIN_BYTES_PER_PARAM = 16


def input_bytes(cfg: DataConfig, n_configs: int, n_particles: int, box: float) -> int:
    """float32 network inputs of ``n_configs`` configurations (plus one working copy)."""
    return 2 * 4 * n_configs * math.prod(input_shape(cfg, n_particles, box))


def model_parameters(cfg: RunConfig, n_particles: int, box: float) -> int:
    """Number of parameters of the model ``cfg`` describes (built on the meta device)."""
    from vae.models import build_model

    with torch.device("meta"):
        model = build_model(cfg, n_particles, box)
    return sum(p.numel() for p in model.parameters())


def check_inputs_memory(cfg: DataConfig, n_configs: int, n_particles: int, box: float) -> None:
    """Refuse inputs that would not fit in memory (names the representation)."""
    shape = input_shape(cfg, n_particles, box)
    what = f"data.representation {cfg.representation}"
    if cfg.representation == "grid":
        what += f" with data.grid_cell {cfg.grid_cell:g}"
    check_memory(input_bytes(cfg, n_configs, n_particles, box),
                 f"{what} ({n_configs} inputs of shape {'x'.join(map(str, shape))})")


def check_model_memory(cfg: RunConfig, n_particles: int, box: float,
                       bytes_per_param: int = TRAIN_BYTES_PER_PARAM) -> None:
    """Refuse a model whose parameters (and their training state) would not fit."""
    shape = input_shape(cfg.data, n_particles, box)  # a batch of inputs first
    check_memory(4 * cfg.train.batch_size * math.prod(shape),
                 f"inputs of shape {'x'.join(map(str, shape))} in batches of "
                 f"{cfg.train.batch_size}")
    try:
        n = model_parameters(cfg, n_particles, box)
    except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
        raise UserError(f"model {cfg.model.arch}: cannot be built for inputs of shape "
                        f"{'x'.join(map(str, shape))} ({str(exc).splitlines()[0][:120]})"
                        ) from None
    m = cfg.model
    check_memory(n * bytes_per_param, f"model {m.arch} with latent_dim {m.latent_dim} "
                 f"({n:,} parameters)")
