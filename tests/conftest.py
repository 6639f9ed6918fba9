"""Shared fixtures. Numba kernels are compiled once per session (and cached on disk)."""

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(autouse=True, scope="session")
def _reference_cache(tmp_path_factory):
    """Equilibrium references (mcsim.reference) are cached in a per-session directory,
    never in the user's ~/.cache."""
    import os

    old = os.environ.get("LJVAE_CACHE_DIR")
    os.environ["LJVAE_CACHE_DIR"] = str(tmp_path_factory.mktemp("ljvae-cache"))
    yield
    if old is None:
        os.environ.pop("LJVAE_CACHE_DIR", None)
    else:
        os.environ["LJVAE_CACHE_DIR"] = old
