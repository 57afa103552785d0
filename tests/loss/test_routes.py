"""The routes of the loss give the same loss and gradients, first and second order.

``batch_shaping_loss`` has three routes (:mod:`batchshaping.loss.routes`): sorted (every device),
ranked and chunked (plain CPU tensors). Each case here runs every route, chosen with
:func:`batchshaping.loss.route`, and compares the loss and every gradient with the sorted route;
second derivatives are compared with ``torch.func.hessian``. Speed is measured by
``benchmarks/bench_loss.py``, never here.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal

from batchshaping import Prior, batch_shaping_loss, gbas_loss
from batchshaping.distributions import Beta, RelaxedBernoulli, SymmetricBeta, prior_traits
from batchshaping.loss import route, routes
from batchshaping.loss.routes import chunked_route, ranked_route, sorted_route

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


def _loss_and_grads(name: str, reduction: str = "sum") -> tuple[torch.Tensor, ...]:
    x, make_prior, parameters, options, _ = CASES[name]
    x = x.detach().clone().requires_grad_()
    parameters = [p.detach().clone().requires_grad_() for p in parameters]
    loss = batch_shaping_loss(x, make_prior(*parameters), reduction=reduction, **options)
    loss.sum().backward()
    return loss.detach(), x.grad, *(p.grad for p in parameters)


def _chunked(name):
    """The chunked route with several chunks to every group."""
    x = CASES[name][0]
    return route("chunked", chunk_values=2 * math.prod(x.shape) // 7 + 1)


# The cases whose prior has traits: the chunked route takes them.
WITH_TRAITS = [
    name
    for name, (_, make_prior, parameters, _, _) in CASES.items()
    if prior_traits(make_prior(*parameters)) is not None
]


def _compare(found, expected, name):
    x, _, _, _, compare_x_grad = CASES[name]
    tolerance = {}
    if x.dtype in (torch.float16, torch.bfloat16):
        tolerance = {"rtol": 1e-2, "atol": 1e-3}
    elif x.dtype == torch.float32:
        tolerance = {"rtol": 1e-4, "atol": 1e-6}
    torch.testing.assert_close(found[0], expected[0], **tolerance)
    if compare_x_grad:
        torch.testing.assert_close(found[1], expected[1], **tolerance)
    else:
        torch.testing.assert_close(found[1].sum(), expected[1].sum(), **tolerance)
    for ours, reference in zip(found[2:], expected[2:], strict=True):
        torch.testing.assert_close(ours, reference, **tolerance)


@pytest.mark.parametrize("reduction", ["sum", "none"])
@pytest.mark.parametrize("name", CASES)
def test_ranked_route_gives_the_sorted_routes_loss_and_gradients(name, reduction):
    with route("ranked"):
        ranked = _loss_and_grads(name, reduction)
    with route("sorted"):
        plain = _loss_and_grads(name, reduction)
    _compare(ranked, plain, name)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", WITH_TRAITS)
def test_chunked_route_gives_the_sorted_routes_loss_and_gradients(name, reduction):
    with _chunked(name):
        chunked = _loss_and_grads(name, reduction)
    with route("sorted"):
        plain = _loss_and_grads(name, reduction)
    _compare(chunked, plain, name)


def test_every_prior_the_tests_use_but_one_has_traits():
    assert len(WITH_TRAITS) == len(CASES)


def test_a_prior_without_traits_takes_the_ranked_route_through_autograd():
    class Shifted(Normal):  # a subclass: the traits of Normal do not apply to it
        def cdf(self, value):
            return super().cdf(value - 0.1)

    assert prior_traits(Shifted(0.5, 0.2)) is None
    x = _values(300, 2).requires_grad_()
    loc = torch.tensor([0.4, 0.6], requires_grad=True)
    results = []
    for name in ("ranked", "sorted"):
        with route(name):
            loss = batch_shaping_loss(x, Shifted(loc, 0.2), dim=0)
        results.append((loss, *torch.autograd.grad(loss, (x, loc))))
    for found, expected in zip(*results, strict=True):
        torch.testing.assert_close(found, expected, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="route 'chunked' needs a prior whose traits"):
        with route("chunked"):
            batch_shaping_loss(x, Shifted(loc, 0.2), dim=0)


def test_compat_drop_in_takes_the_ranked_route_with_the_same_result():
    # gbas_loss builds per-group Beta priors with the original's clamped density: the ranked
    # route rebuilds them per group and must keep that surrogate gradient.
    x = _values(400, 3)
    results = []
    for name in ("ranked", "sorted"):
        leaf = x.clone().requires_grad_()
        a = _param(0.5, 2.0, 4.0)
        with route(name):
            loss = gbas_loss(leaf, Prior.BETA, a, 2.0, trainable_prior_params=True, dim=1)
        loss.backward()
        results.append((loss.detach(), leaf.grad, a.grad))
    for found, expected in zip(*results, strict=True):
        torch.testing.assert_close(found, expected, rtol=1e-4, atol=1e-6)


# --- the automatic choice ------------------------------------------------------------------


def test_automatic_choice():
    small, large = torch.rand(1000), torch.rand(1 << 21)
    normal, beta = Normal(0.5, 0.2), Beta(2.0, 3.0)
    assert routes.choose(small, normal, "mean") is ranked_route.loss
    assert routes.choose(large, normal, "mean") is chunked_route.loss
    assert routes.choose(large, normal, "none") is ranked_route.loss
    assert routes.choose(large, beta, "mean") is ranked_route.loss  # betainc does not gain
    assert routes.choose(small.half(), normal, "mean") is sorted_route.loss
    assert routes.choose(small.to("meta"), normal, "mean") is sorted_route.loss


def test_torch_func_transforms_take_the_sorted_route(monkeypatch):
    taken = []
    monkeypatch.setattr(sorted_route, "loss", lambda *args: taken.append(1) or _sorted(*args))
    x = _values(50)
    grad = torch.func.grad(lambda x: batch_shaping_loss(x, Normal(0.5, 0.2)))(x)
    leaf = x.clone().requires_grad_()
    batch_shaping_loss(leaf, Normal(0.5, 0.2)).backward()
    torch.testing.assert_close(grad, leaf.grad)
    assert taken == [1]


_sorted = sorted_route.loss


def test_forcing_a_route_that_cannot_take_the_values_is_an_error():
    with pytest.raises(ValueError, match="route 'ranked' ranks plain float32 or float64 CPU"):
        with route("ranked"):
            routes.choose(torch.rand(10, device="meta"), Normal(0.5, 0.2), "mean")
    with pytest.raises(ValueError, match="route 'chunked' ranks plain float32 or float64 CPU"):
        with route("chunked"):
            torch.func.grad(lambda x: batch_shaping_loss(x, Normal(0.5, 0.2)))(torch.rand(10))


def test_route_names_and_options_are_checked():
    assert set(routes.available_routes()) == {"sorted", "ranked", "chunked"}
    with pytest.raises(ValueError, match="unknown route 'fast'"), route("fast"):
        pass
    with pytest.raises(ValueError, match="takes no option chunk_values"):
        with route("ranked", chunk_values=10):
            pass
    with pytest.raises(ValueError, match="chunk_values must be an int >= 1"):
        with route("chunked", chunk_values=0):
            pass


# --- second derivatives --------------------------------------------------------------------

SECOND_ORDER_PRIORS = {
    "normal": lambda: Normal(torch.tensor([0.4, 0.6], dtype=F64), 0.3),
    "relaxed bernoulli": lambda: RelaxedBernoulli(
        torch.tensor([0.5, 0.8], dtype=F64), probs=torch.tensor(0.4, dtype=F64)
    ),
    "beta": lambda: Beta(torch.tensor([2.0, 0.7], dtype=F64), torch.tensor(3.0, dtype=F64)),
    "symmetric beta": lambda: SymmetricBeta(torch.tensor([0.3, 0.8], dtype=F64)),
}
ROUTES = {"sorted": {}, "ranked": {}, "chunked": {"chunk_values": 7}}


@pytest.mark.parametrize("route_name", ROUTES)
@pytest.mark.parametrize("prior_name", SECOND_ORDER_PRIORS)
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_second_derivatives_in_x_match_torch_func_hessian(route_name, prior_name, reduction):
    x = _values(12, 2, dtype=F64, seed=5)
    mask = torch.ones(12, 2, dtype=torch.bool)
    mask[3, 0] = mask[7, 1] = False

    def loss(values):
        out = batch_shaping_loss(
            values, SECOND_ORDER_PRIORS[prior_name](), dim=0, mask=mask, reduction=reduction
        )
        return out.sum()

    expected = torch.func.hessian(loss)(x)  # plain autograd ops: the sorted route
    with route(route_name, **ROUTES[route_name]):
        found = torch.autograd.functional.hessian(loss, x)
        leaf = x.clone().requires_grad_()
        (gradient,) = torch.autograd.grad(loss(leaf), leaf, create_graph=True)
        (double,) = torch.autograd.grad((gradient * torch.arange(24.0).reshape(12, 2)).sum(), leaf)
    torch.testing.assert_close(found, expected, rtol=1e-10, atol=1e-12)
    direction = torch.arange(24.0, dtype=F64).reshape(12, 2)
    reference = torch.einsum("ijkl,ij->kl", expected, direction)
    torch.testing.assert_close(double, reference, rtol=1e-10, atol=1e-12)
    assert expected.abs().max() > 1e-3


@pytest.mark.parametrize("route_name", ROUTES)
@pytest.mark.parametrize("prior_name", ["normal", "relaxed bernoulli"])
def test_second_derivatives_in_the_parameters_match_torch_func_hessian(route_name, prior_name):
    x = _values(40, dtype=F64, seed=6)

    def loss(loc_or_temperature):
        if prior_name == "normal":
            prior = Normal(loc_or_temperature, 0.3)
        else:
            prior = RelaxedBernoulli(loc_or_temperature, probs=torch.tensor(0.4, dtype=F64))
        return batch_shaping_loss(x, prior)

    parameter = torch.tensor(0.5, dtype=F64)
    expected = torch.func.hessian(loss)(parameter)
    with route(route_name, **ROUTES[route_name]):
        found = torch.autograd.functional.hessian(loss, parameter)
    torch.testing.assert_close(found, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("route_name", ROUTES)
def test_second_derivatives_in_beta_concentrations_raise(route_name):
    x = _values(40, dtype=F64, seed=6)

    def loss(a):
        return batch_shaping_loss(x, Beta(a, 3.0))

    with route(route_name, **ROUTES[route_name]):
        with pytest.raises(NotImplementedError, match="second derivatives with respect to a or b"):
            torch.autograd.functional.hessian(loss, torch.tensor(2.0, dtype=F64))


# --- CUDA ----------------------------------------------------------------------------------------


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


@pytest.mark.cuda
def test_cuda_graph_capture_replays_the_loss_and_its_gradients():
    device = torch.device("cuda")
    static_x = torch.rand(2048, 8, device=device, requires_grad=True)
    a = torch.linspace(0.5, 4.0, 8, device=device).requires_grad_()

    def step():
        loss = batch_shaping_loss(
            static_x, Beta(a, 3.0, validate_args=False), dim=0, validate=False
        )
        loss.backward()
        return loss

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):  # warm up outside the graph, as capture requires
            static_x.grad = a.grad = None
            step()
    torch.cuda.current_stream().wait_stream(side)
    static_x.grad = a.grad = None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_loss = step()
    new_x = torch.rand(2048, 8, device=device)
    static_x.data.copy_(new_x)
    graph.replay()
    torch.cuda.synchronize()
    leaf, a_eager = new_x.clone().requires_grad_(), a.detach().clone().requires_grad_()
    expected = batch_shaping_loss(leaf, Beta(a_eager, 3.0, validate_args=False), dim=0)
    expected.backward()
    torch.testing.assert_close(static_loss, expected, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(static_x.grad, leaf.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(a.grad, a_eager.grad, rtol=1e-4, atol=1e-6)
