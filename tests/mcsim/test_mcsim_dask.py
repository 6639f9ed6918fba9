"""Scale-out on Dask: a LocalCluster with two workers writes the same file as a local
run (bit for bit), also after an interrupted distributed run resumed locally."""

import h5py
import numpy as np
import pytest

from mcsim.config import SimConfig
from mcsim.io import DatasetWriter, read_dataset
from mcsim.reference import ReferenceSettings
from mcsim.run import run_simulation

distributed = pytest.importorskip("distributed")

CFG = SimConfig(gammas=(0.1, 0.7), n_samples=30, sweeps=40, seed=9)
SMALL_REF = ReferenceSettings(n_chains=2, burn_sweeps=500, sweeps=2000, record_every=5)


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as c:
        yield c


def _run(path, cfg=CFG, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("verdict", False)
    kw.setdefault("n_traces", 0)
    return run_simulation(cfg, path, chunk_size=7, **kw)


def _same(a, b):
    da, db = read_dataset(a), read_dataset(b)
    for k in ("positions", "energy", "gamma", "acceptance"):
        assert np.array_equal(getattr(da, k), getattr(db, k), equal_nan=True), k


@pytest.mark.parametrize("protocol", ["independent", "uniform"])
def test_dask_run_is_bit_identical_to_local(tmp_path, client, protocol):
    cfg = CFG.replace(protocol=protocol)
    _run(tmp_path / "local.h5", cfg)
    _run(tmp_path / "dask.h5", cfg, scheduler=client)
    _same(tmp_path / "local.h5", tmp_path / "dask.h5")


def test_dask_by_address_with_verdict(tmp_path, client):
    _run(tmp_path / "local.h5", verdict=True, reference=SMALL_REF, reference_cache=False)
    _run(tmp_path / "dask.h5", scheduler=client.scheduler.address, verdict=True,
         reference=SMALL_REF, reference_cache=False)
    _same(tmp_path / "local.h5", tmp_path / "dask.h5")
    with h5py.File(tmp_path / "local.h5") as a, h5py.File(tmp_path / "dask.h5") as b:
        assert a["diagnostics/gamma_0"].attrs["verdict"] == \
            b["diagnostics/gamma_0"].attrs["verdict"]


def test_interrupted_dask_run_resumed_locally(tmp_path, client, monkeypatch):
    _run(tmp_path / "local.h5")
    out = tmp_path / "d.h5"
    real_write = DatasetWriter.write
    calls = {"n": 0}

    def write(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 7:  # inside the second gamma (5 chunks per gamma: 4 x 7 + 2)
            raise KeyboardInterrupt
        return real_write(self, *a, **k)

    monkeypatch.setattr(DatasetWriter, "write", write)
    with pytest.raises(KeyboardInterrupt):
        _run(out, scheduler=client)
    monkeypatch.undo()
    with h5py.File(tmp_path / "d.h5.partial") as f:
        assert f.attrs["n_done"] == 37
    _run(out, resume=True)
    _same(tmp_path / "local.h5", out)


def test_dask_auto_sweeps_equals_local(tmp_path, client):
    cfg = CFG.replace(n_particles=12, gammas=(1.0,), n_samples=20, sweeps=10)
    kw = {"auto_sweeps": True, "reference": SMALL_REF, "reference_cache": False}
    a = _run(tmp_path / "local.h5", cfg, **kw)
    b = _run(tmp_path / "dask.h5", cfg, scheduler=client, **kw)
    assert a.sweeps == b.sweeps
    _same(tmp_path / "local.h5", tmp_path / "dask.h5")


def test_chain_protocol_refuses_scheduler(tmp_path, client):
    with pytest.raises(ValueError, match="scheduler"):
        _run(tmp_path / "c.h5", CFG.replace(protocol="chain"), scheduler=client)
