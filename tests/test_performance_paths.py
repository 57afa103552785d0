"""The loss's fast CPU route (ranks from numpy's sort) against its sorted route, and CUDA checks.

``batch_shaping_loss`` has two routes (see :mod:`batchshaping.loss`): the ranked one, taken by
plain CPU tensors, and the sorted one, taken everywhere else. Each case here runs both, forced
through ``loss._RANKED_ROUTE``, and compares the loss and every gradient. Speed is measured by
``benchmarks/bench_loss.py``, never asserted on the CPU; the CUDA tests at the end (marked
``cuda``, skipped without a device) check synchronisation, ``torch.compile`` and, as the
performance issue asks, the cost against ``torch.sort`` on the device.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from torch.distributions import Normal

from batchshaping import Prior, batch_shaping_loss, gbas_loss
from batchshaping import loss as loss_module
from batchshaping._ranking import empirical_cdf, host_ranking_applies
from batchshaping.distributions import Beta, RelaxedBernoulli, SymmetricBeta

F64 = torch.float64


def _param(*values, dtype=torch.float32):
    """A learnable parameter: a scalar for one value, else one per group."""
    return torch.tensor(values[0] if len(values) == 1 else values, dtype=dtype).requires_grad_()


def _values(*shape, dtype=torch.float32, seed=0, decimals=None, low=0.01, high=0.99):
    generator = torch.Generator().manual_seed(seed)
    values = torch.rand(*shape, dtype=torch.float64, generator=generator) * (high - low) + low
    if decimals is not None:
        values = values.round(decimals=decimals)
    return values.to(dtype)


def _mask(*shape, seed=1, keep=0.6):
    generator = torch.Generator().manual_seed(seed)
    mask = torch.rand(*shape, generator=generator) < keep
    mask[:2] = True  # at least 2 kept values in every group along dim 0
    return mask


# name: (x, make_prior(params), params, options, compare x.grad element by element)
CASES = {
    "flat beta": (_values(3000), lambda a, b: Beta(a, b), (_param(2.0), _param(6.0)), {}, True),
    "flat symmetric beta": (_values(2000), lambda a: SymmetricBeta(a), (_param(0.9),), {}, True),
    "flat normal": (_values(2000), lambda m, s: Normal(m, s), (_param(0.6), _param(0.1)), {}, True),
    "dim tuple, per-group normal": (
        _values(20, 3, 30),
        lambda m: Normal(m, 0.2),
        (_param(0.3, 0.5, 0.7),),
        {"dim": (0, 2)},
        True,
    ),
    "per-group beta along dim 0": (
        _values(500, 4),
        lambda a, b: Beta(a, b),
        (_param(0.5, 1.0, 2.0, 5.0), _param(0.8, 3.0, 1.0, 2.0)),
        {"dim": 0},
        True,
    ),
    "per-group beta, grid of groups": (
        _values(3, 2, 100),
        lambda a, b: Beta(a, b),
        (_param(0.7, 3.0), _param(2.0, 1.5)),
        {"dim": -1},
        True,
    ),
    "mask, per-group beta": (
        _values(300, 5),
        lambda a, b: Beta(a, b),
        (_param(0.5, 1.0, 2.0, 3.0, 4.0), _param(1.0, 2.0, 3.0, 2.0, 1.0)),
        {"dim": 0, "mask": _mask(300, 5)},
        True,
    ),
    "ties, relaxed bernoulli": (
        _values(400, 3, decimals=1),
        lambda t, logits: RelaxedBernoulli(t, logits=logits),
        (_param(0.4, 0.6, 0.8), _param(-0.5, 0.0, 1.0)),
        {"dim": 0, "ties": True},
        True,
    ),
    "ties and mask, beta": (
        _values(400, 3, decimals=2),
        lambda a, b: Beta(a, b),
        (_param(2.0), _param(3.0)),
        {"dim": 0, "ties": True, "mask": _mask(400, 3)},
        True,
    ),
    # Without ties=True, tied values take consecutive ranks in an order the routes may choose
    # differently: the loss and the parameter gradients do not depend on it, x.grad does.
    "tied values without ties": (
        _values(600, decimals=1),
        lambda a, b: Beta(a, b),
        (_param(2.0), _param(3.0)),
        {},
        False,
    ),
    "logits, per-group beta": (
        (_values(300, 2) - 0.5) * 40,
        lambda a, b: Beta(a, b),
        (_param(0.5, 3.0), _param(2.0, 0.7)),
        {"dim": 0, "logits": True},
        True,
    ),
    "logits, mask, ties, relaxed bernoulli": (
        ((_values(300, 2, decimals=2) - 0.5) * 20),
        lambda t: RelaxedBernoulli(t, probs=0.3),
        (_param(0.2, 0.7),),
        {"dim": 0, "logits": True, "ties": True, "mask": _mask(300, 2)},
        True,
    ),
    "float64, per-group beta": (
        _values(400, 3, dtype=F64),
        lambda a, b: Beta(a, b),
        (_param(0.5, 2.0, 4.0, dtype=F64), _param(1.5, 2.0, 0.8, dtype=F64)),
        {"dim": 0},
        True,
    ),
    "float64, ties and mask": (
        _values(400, 3, dtype=F64, decimals=2),
        lambda m, s: Normal(m, s),
        (_param(0.5, dtype=F64), _param(0.3, dtype=F64)),
        {"dim": 0, "ties": True, "mask": _mask(400, 3)},
        True,
    ),
    "bfloat16, relaxed bernoulli": (
        _values(500, 2, dtype=torch.bfloat16),
        lambda t: RelaxedBernoulli(t, probs=0.3),
        (_param(0.5),),
        {"dim": 0},
        True,
    ),
    "float16, beta": (
        _values(500, dtype=torch.float16),
        lambda a: Beta(a, 4.0),
        (_param(2.0),),
        {},
        True,
    ),
    "signed zeros tie, ties": (
        torch.tensor([0.0, -0.0, 0.5, -0.5, -0.0, 0.25, 0.0, -0.25]),
        lambda m: Normal(m, 1.0),
        (_param(0.1),),
        {"ties": True},
        True,
    ),
}


def _loss_and_grads(
    name: str, ranked: bool, monkeypatch, reduction: str = "sum", chunked: bool = False
) -> tuple[torch.Tensor, ...]:
    x, make_prior, parameters, options, _ = CASES[name]
    monkeypatch.setattr(loss_module, "_RANKED_ROUTE", ranked)
    calls = []
    if chunked:
        # Every input in chunks, several to each group.
        monkeypatch.setattr(loss_module, "_CHUNKED_MIN", 0)
        monkeypatch.setattr(loss_module, "_MIN_CHUNK_SAMPLES", 1)
        monkeypatch.setattr(loss_module, "_CHUNK", 2 * math.prod(x.shape) // 7 + 1)
        in_chunks = loss_module._loss_in_chunks
        monkeypatch.setattr(
            loss_module, "_loss_in_chunks", lambda *args: calls.append(1) or in_chunks(*args)
        )
    x = x.detach().clone().requires_grad_()
    parameters = [p.detach().clone().requires_grad_() for p in parameters]
    loss = batch_shaping_loss(x, make_prior(*parameters), reduction=reduction, **options)
    loss.backward()
    assert len(calls) == chunked
    return loss.detach(), x.grad, *(p.grad for p in parameters)


@pytest.mark.parametrize("name", CASES)
def test_ranked_route_gives_the_sorted_routes_loss_and_gradients(name, monkeypatch):
    _compare_with_the_sorted_route(name, monkeypatch, "sum", chunked=False)


# The cases whose prior the ranked route evaluates in chunks when the input is large.
CHUNKED_CASES = [
    name
    for name, (_, make_prior, parameters, _, _) in CASES.items()
    if loss_module._rebuildable(make_prior(*parameters)) is not None
]


def test_chunks_serve_the_priors_of_torch_operations_not_beta():
    assert len(CHUNKED_CASES) >= 6
    assert loss_module._rebuildable(Beta(2.0, 3.0)) is None


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", CHUNKED_CASES)
def test_chunked_ranked_route_gives_the_sorted_routes_loss_and_gradients(
    name, reduction, monkeypatch
):
    _compare_with_the_sorted_route(name, monkeypatch, reduction, chunked=True)


def _compare_with_the_sorted_route(name, monkeypatch, reduction, chunked):
    ranked = _loss_and_grads(name, True, monkeypatch, reduction, chunked)
    monkeypatch.undo()
    plain = _loss_and_grads(name, False, monkeypatch, reduction)
    x, _, _, _, compare_x_grad = CASES[name]
    low_precision = x.dtype in (torch.float16, torch.bfloat16)
    tolerance = {"rtol": 1e-2, "atol": 1e-3} if low_precision else {}
    if x.dtype == torch.float32:
        tolerance = {"rtol": 1e-4, "atol": 1e-6}
    torch.testing.assert_close(ranked[0], plain[0], **tolerance)
    if compare_x_grad:
        torch.testing.assert_close(ranked[1], plain[1], **tolerance)
    else:
        torch.testing.assert_close(ranked[1].sum(), plain[1].sum(), **tolerance)
    for found, expected in zip(ranked[2:], plain[2:], strict=True):
        torch.testing.assert_close(found, expected, **tolerance)


def test_compat_drop_in_takes_the_ranked_route_with_the_same_result(monkeypatch):
    # gbas_loss builds per-group Beta priors with the original's clamped density: the ranked
    # route rebuilds them per group and must keep that surrogate gradient.
    x = _values(400, 3)
    results = []
    for ranked in (True, False):
        monkeypatch.setattr(loss_module, "_RANKED_ROUTE", ranked)
        leaf = x.clone().requires_grad_()
        a = _param(0.5, 2.0, 4.0)
        loss = gbas_loss(leaf, Prior.BETA, a, 2.0, trainable_prior_params=True, dim=1)
        loss.backward()
        results.append((loss.detach(), leaf.grad, a.grad))
    for found, expected in zip(*results, strict=True):
        torch.testing.assert_close(found, expected, rtol=1e-4, atol=1e-6)


def test_ranked_route_is_the_default_for_plain_cpu_tensors():
    assert loss_module._RANKED_ROUTE is None
    assert host_ranking_applies(torch.rand(10))
    assert host_ranking_applies(torch.rand(10, dtype=F64))
    assert not host_ranking_applies(torch.rand(10, dtype=torch.float16))
    assert not host_ranking_applies(torch.rand(10, device="meta"))


def test_torch_func_transforms_take_the_sorted_route():
    x = _values(50)
    grad = torch.func.grad(lambda x: batch_shaping_loss(x, Normal(0.5, 0.2)))(x)
    leaf = x.clone().requires_grad_()
    batch_shaping_loss(leaf, Normal(0.5, 0.2)).backward()
    torch.testing.assert_close(grad, leaf.grad)


# --- the ranking itself --------------------------------------------------------------------------


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


# --- CUDA ----------------------------------------------------------------------------------------

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _cuda_priors(device):
    def tensor(value):
        return torch.tensor(value, device=device)

    # validate_args=False: parameter checks read values on the host.
    return {
        "Beta(2, 6)": Beta(tensor(2.0), tensor(6.0), validate_args=False),
        "Beta(0.6, 0.4)": Beta(tensor(0.6), tensor(0.4), validate_args=False),
        "SymmetricBeta(0.9)": SymmetricBeta(tensor(0.9), validate_args=False),
        "Normal(0.6, 0.1)": Normal(tensor(0.6), tensor(0.1), validate_args=False),
        "RelaxedBernoulli(p 0.3, t 0.5)": RelaxedBernoulli(
            tensor(0.5), probs=tensor(0.3), validate_args=False
        ),
    }


@cuda
@pytest.mark.cuda
@pytest.mark.parametrize("options", [{}, {"dim": 0, "ties": True}, {"dim": 0, "logits": True}])
def test_cuda_forward_and_backward_never_synchronise(options):
    device = torch.device("cuda")
    x = torch.rand(4096, 8, device=device, requires_grad=True)
    mask = torch.rand(4096, 8, device=device) < 0.7
    a = torch.full((8,), 2.0, device=device, requires_grad=True)
    priors = [
        Beta(a, 3.0, validate_args=False),
        RelaxedBernoulli(a / 4, probs=torch.full((8,), 0.3, device=device), validate_args=False),
    ]
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for prior in priors:
            group_options = options if "dim" in options else {"dim": 0}
            for group_mask in (None, mask):
                loss = batch_shaping_loss(
                    x, prior, mask=group_mask, validate=False, **{**options, **group_options}
                )
                loss.backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(x.grad).all() and torch.isfinite(a.grad).all()


@cuda
@pytest.mark.cuda
def test_cuda_torch_compile_fullgraph():
    device = torch.device("cuda")

    def loss(x, mask, a):
        prior = Beta(a, 3.0, validate_args=False)
        return batch_shaping_loss(x, prior, dim=0, mask=mask, ties=True)

    torch._dynamo.reset()
    compiled = torch.compile(loss, fullgraph=True)
    x = torch.rand(512, 4, device=device, requires_grad=True)
    mask = torch.rand(512, 4, device=device) < 0.8
    a = torch.tensor([0.5, 1.0, 2.0, 4.0], device=device, requires_grad=True)
    found = compiled(x, mask, a)
    found.backward()
    grads = x.grad.clone(), a.grad.clone()
    x.grad = a.grad = None
    expected = loss(x, mask, a)
    expected.backward()
    torch.testing.assert_close(found, expected, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(grads[0], x.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(grads[1], a.grad, rtol=1e-4, atol=1e-6)


def _cuda_median_time(fn, repeats=7, warmup=2) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


@cuda
@pytest.mark.cuda
@pytest.mark.parametrize("size", [1_000_000, 10_000_000])
@pytest.mark.parametrize("name", list(_cuda_priors("cpu")))
def test_cuda_loss_costs_at_most_one_and_a_half_torch_sorts(name, size):
    device = torch.device("cuda")
    prior = _cuda_priors(device)[name]
    x = torch.rand(size, device=device, requires_grad=True)

    def loss():
        x.grad = None
        batch_shaping_loss(x, prior, validate=False).backward()

    ours = _cuda_median_time(loss)
    sort = _cuda_median_time(lambda: torch.sort(x.detach()))
    assert ours <= 1.5 * sort, f"{name}, N = {size:.0e}: {ours / sort:.2f}x torch.sort"


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
    import threading

    from batchshaping import _ranking

    monkeypatch.setattr(_ranking, "_workspace", threading.local())
    first = _ranking._scratch(1000)
    again = _ranking._scratch(500)
    assert np.shares_memory(first, again)  # kept and reused
    monkeypatch.setattr(_ranking, "_MAX_KEPT", 2000)
    large = _ranking._scratch(5000)
    assert not np.shares_memory(large, _ranking._scratch(5000))  # too large to keep
    assert _ranking._scratch(1500).size == 1500
