"""The ranking of the ranked routes: each value's empirical CDF within its group."""

from __future__ import annotations

import gc
import math
import threading

import numpy as np
import pytest
import torch

from batchshaping.loss.routes import ranking
from batchshaping.loss.routes.ranking import empirical_cdf, host_ranking_applies

F64 = torch.float64


def test_host_ranking_applies_to_plain_float_cpu_tensors():
    assert host_ranking_applies(torch.rand(10))
    assert host_ranking_applies(torch.rand(10, dtype=F64))
    assert not host_ranking_applies(torch.rand(10, dtype=torch.float16))
    assert not host_ranking_applies(torch.rand(10, device="meta"))


def _empirical_cdf_oracle(values: np.ndarray, mask: np.ndarray | None, ties: bool) -> np.ndarray:
    """rank / (n + 1) per row from numpy's stable argsort, masked-out positions 0."""
    out = np.zeros(values.shape, dtype=np.float64)
    for row in range(values.shape[0]):
        kept = np.ones(values.shape[1], bool) if mask is None else mask[row]
        group = values[row][kept].astype(np.float64)
        if ties:
            ranks = np.searchsorted(np.sort(group), group, side="right")
        else:
            ranks = np.empty(len(group))
            ranks[np.argsort(group, kind="stable")] = np.arange(1, len(group) + 1)
        out[row, kept] = ranks / (len(group) + 1)
    return out


@pytest.fixture
def two_threads():
    """At least 2 torch threads, so that the ranking shares its work out even on one core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(max(threads, 2))
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("shape", [(8, 10_000), (1, 100_000)])
def test_empirical_cdf_matches_an_argsort_oracle(dtype, ties, masked, shape, two_threads):
    # Enough values to share the work out over threads: 8 rows of 10,000 by rows, and one row
    # of 100,000 in two halves sorted apart and merged (float32).
    generator = torch.Generator().manual_seed(3)
    values = torch.randn(*shape, generator=generator).mul(20).round().to(dtype)
    values[0, :6] = torch.tensor([-0.0, 0.0, math.inf, -math.inf, 1e-45, -1e-45]).to(dtype)
    values[0, -3:] = torch.tensor([-0.0, math.inf, 0.0]).to(dtype)
    mask = torch.rand(*shape, generator=generator) < 0.7 if masked else None
    found = empirical_cdf(values, mask, ties).double().numpy()
    expected = _empirical_cdf_oracle(values.numpy(), None if mask is None else mask.numpy(), ties)
    if ties or dtype == torch.float32:
        # float32 keys break ties by index, like the stable oracle; float64's argsort breaks them
        # in any order, so there the ranks must be a permutation that orders like the values.
        np.testing.assert_allclose(found, expected, rtol=1e-6 if dtype == torch.float32 else 0)
    else:
        for row in range(values.shape[0]):
            kept = np.ones(values.shape[1], bool) if mask is None else mask[row].numpy()
            ranks, group = found[row][kept], values[row].numpy()[kept]
            np.testing.assert_allclose(np.sort(ranks), np.sort(expected[row][kept]))
            by_value = np.lexsort((ranks, group))
            assert (np.diff(ranks[by_value]) > 0).all()


def test_empirical_cdf_keeps_the_shape_and_takes_no_gradient():
    values = torch.rand(2, 3, 7, requires_grad=True)
    result = empirical_cdf(values)
    assert result.shape == values.shape
    assert not result.requires_grad
    np.testing.assert_allclose(np.sort(result[1, 2].numpy()), np.arange(1, 8) / 8, rtol=1e-6)


@pytest.mark.parametrize("shape", [(3, 5_000), (1, 100_000)])
@pytest.mark.parametrize("ties", [False, True])
def test_empirical_cdf_of_equal_values(shape, ties, two_threads):
    # Every key lands in one bucket of every radix pass; in one long row all values fall on one
    # side of the pivot, the side written in decreasing index order.
    values = torch.full(shape, 0.25)
    found = empirical_cdf(values, ties=ties)
    n = shape[1]
    expected = torch.full(shape, n) if ties else torch.arange(1, n + 1).expand(shape)
    torch.testing.assert_close(found, expected / (n + 1), rtol=0, atol=0, check_dtype=False)


def test_ranking_workspace_is_reused_and_bounded(monkeypatch):
    monkeypatch.setattr(ranking, "_workspace", threading.local())
    monkeypatch.setattr(ranking, "_limit_bytes", ranking._limit_bytes)
    first = ranking._scratch(1000)
    again = ranking._scratch(500)
    assert np.shares_memory(first, again)  # kept and reused
    ranking.set_workspace_limit(8 * 2000)
    large = ranking._scratch(5000)
    assert not np.shares_memory(large, ranking._scratch(5000))  # too large to keep
    assert ranking._scratch(1500).size == 1500


def test_workspace_can_be_measured_released_and_capped(monkeypatch):
    monkeypatch.setattr(ranking, "_limit_bytes", ranking._limit_bytes)
    values = torch.rand(1, 50_000)
    expected = empirical_cdf(values)
    assert ranking.workspace_bytes() >= 16 * 50_000
    assert ranking.release_workspace() >= 16 * 50_000
    assert ranking.workspace_bytes() == 0
    ranking.set_workspace_limit(0)  # keep nothing: every call allocates afresh
    torch.testing.assert_close(empirical_cdf(values), expected, rtol=0, atol=0)
    assert ranking.workspace_bytes() == 0
    with pytest.raises(ValueError, match="nbytes must be an int >= 0"):
        ranking.set_workspace_limit(-1)


def test_a_threads_workspace_goes_with_the_thread():
    def rank():
        empirical_cdf(torch.rand(1, 30_000))  # one thread: no pool

    ranking.release_workspace()
    worker = threading.Thread(target=rank)
    worker.start()
    worker.join()
    del worker
    gc.collect()
    assert ranking.workspace_bytes() == 0
