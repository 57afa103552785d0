"""batch_shaping_loss and BatchShapingLoss: the formula, groups, masks, ties, logits, dtypes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch import nn
from torch.autograd import gradcheck
from torch.distributions import MultivariateNormal, Normal, Uniform

from batchshaping import BatchShapingLoss, batch_shaping_loss
from batchshaping.distributions import Beta, RelaxedBernoulli, SymmetricBeta

F64 = torch.float64


def reference_loss(values: np.ndarray, cdf, ties: bool = False) -> float:
    """The loss of one group, written out in numpy: (1/N) sum (rank / (N + 1) - F(x_(i)))^2."""
    values = np.sort(np.asarray(values, dtype=np.float64))
    n = len(values)
    if ties:
        ranks = np.searchsorted(values, values, side="right")
    else:
        ranks = np.arange(1, n + 1)
    return float(np.mean((ranks / (n + 1) - cdf(values)) ** 2))


def standard_normal_cdf(values):
    return scipy.stats.norm.cdf(values)


# --- the formula -------------------------------------------------------------------------------


def test_known_value():
    # Uniform(0, 1): ((1/3 - 1/4)^2 + (2/3 - 3/4)^2) / 2 = 1/144.
    loss = batch_shaping_loss(torch.tensor([0.75, 0.25], dtype=F64), Uniform(0.0, 1.0))
    assert loss.item() == pytest.approx(1 / 144, rel=1e-12)


def test_known_value_with_ties():
    # Ties share the empirical CDF: ranks 2, 2, 3 over N + 1 = 4.
    x = torch.tensor([0.5, 0.9, 0.5], dtype=F64)
    loss = batch_shaping_loss(x, Uniform(0.0, 1.0), ties=True)
    assert loss.item() == pytest.approx(((0.5 - 0.5) ** 2 * 2 + (0.75 - 0.9) ** 2) / 3, rel=1e-12)
    untied = batch_shaping_loss(x, Uniform(0.0, 1.0))
    assert untied.item() == pytest.approx(((0.25 - 0.5) ** 2 + 0 + (0.75 - 0.9) ** 2) / 3)


@pytest.mark.parametrize("ties", [False, True])
def test_matches_numpy_reference_per_group(ties):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(4, 37, 3, dtype=F64, generator=generator).round(decimals=1)  # ties
    loss = batch_shaping_loss(x, Normal(0.0, 1.0), dim=1, ties=ties, reduction="none")
    assert loss.shape == (4, 3)
    for i in range(4):
        for j in range(3):
            expected = reference_loss(x[i, :, j].numpy(), standard_normal_cdf, ties)
            assert loss[i, j].item() == pytest.approx(expected, rel=1e-12)


def test_ties_are_found_within_each_group():
    # Regression (the original looked for tied columns, so with dim it never saw a tie).
    x = torch.tensor([[0.2, 0.2, 0.2, 0.7], [0.1, 0.4, 0.6, 0.9]], dtype=F64)
    prior = Uniform(0.0, 1.0)
    with_ties = batch_shaping_loss(x, prior, dim=1, ties=True, reduction="none")
    expected = [reference_loss(row.numpy(), lambda v: v, ties=True) for row in x]
    torch.testing.assert_close(with_ties, torch.tensor(expected, dtype=F64))
    without = batch_shaping_loss(x, prior, dim=1, reduction="none")
    assert with_ties[0] != without[0]
    assert with_ties[1] == without[1]


def test_per_group_priors_are_matched_with_their_own_group():
    # Regression: the original matched every group against every group's Beta prior, giving
    # 0.084 on 3 groups of 2000 exact Beta samples instead of the mean of per-group losses.
    torch.manual_seed(0)
    a = torch.tensor([0.5, 2.0, 5.0], dtype=F64)
    b = torch.tensor([0.5, 6.0, 1.0], dtype=F64)
    prior = Beta(a, b)
    x = prior.sample((2000,))
    loss = batch_shaping_loss(x, prior, dim=0)
    separately = [batch_shaping_loss(x[:, g], Beta(a[g], b[g])) for g in range(3)]
    torch.testing.assert_close(loss, torch.stack(separately).mean())
    assert loss < 5e-4


def test_reductions():
    x = torch.rand(5, 20, dtype=F64)
    none = batch_shaping_loss(x, Uniform(0.0, 1.0), dim=1, reduction="none")
    assert none.shape == (5,)
    torch.testing.assert_close(batch_shaping_loss(x, Uniform(0.0, 1.0), dim=1), none.mean())
    torch.testing.assert_close(
        batch_shaping_loss(x, Uniform(0.0, 1.0), dim=1, reduction="sum"), none.sum()
    )


@pytest.mark.parametrize("dim", [(0, 2), (2, 0), (-1, 0), (0, -1)])
def test_tuple_of_dims(dim):
    x = torch.randn(6, 4, 5, dtype=F64)
    loss = batch_shaping_loss(x, Normal(0.0, 1.0), dim=dim, reduction="none")
    assert loss.shape == (4,)
    for j in range(4):
        expected = reference_loss(x[:, j, :].reshape(-1).numpy(), standard_normal_cdf)
        assert loss[j].item() == pytest.approx(expected, rel=1e-12)


def test_dim_none_is_one_distribution_of_all_values():
    x = torch.randn(3, 4, 5, dtype=F64)
    loss = batch_shaping_loss(x, Normal(0.0, 1.0))
    assert loss.item() == pytest.approx(reference_loss(x.reshape(-1), standard_normal_cdf))
    torch.testing.assert_close(loss, batch_shaping_loss(x, Normal(0.0, 1.0), dim=(0, 1, 2)))


def test_prior_batch_shape_broadcasts_to_groups():
    x = torch.randn(3, 4, 50, dtype=F64)
    loc = torch.tensor([[-1.0], [0.0], [1.0]], dtype=F64)  # one prior per row of groups
    loss = batch_shaping_loss(x, Normal(loc, 1.0), dim=2, reduction="none")
    for i in range(3):
        for j in range(4):
            expected = reference_loss(
                x[i, j].numpy(), lambda v, i=i: standard_normal_cdf(v - i + 1)
            )
            assert loss[i, j].item() == pytest.approx(expected, rel=1e-12)


# --- masks -------------------------------------------------------------------------------------


def test_mask_equals_slicing_each_group():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(4, 30, dtype=F64, generator=generator)
    mask = torch.rand(4, 30, generator=generator) > 0.4
    x[~mask] = math.nan  # padding may hold anything
    prior = Normal(torch.tensor([0.0, 0.5, 1.0, -1.0], dtype=F64), 1.0)
    loss = batch_shaping_loss(x.t(), prior, dim=0, mask=mask.t(), reduction="none")
    for g in range(4):
        sliced = batch_shaping_loss(x[g][mask[g]], Normal(prior.loc[g], 1.0))
        torch.testing.assert_close(loss[g], sliced)


def test_mask_with_ties_counts_only_kept_values():
    x = torch.tensor([[0.3, 0.3, 0.3, 0.8]], dtype=F64)
    mask = torch.tensor([[True, False, True, True]])
    loss = batch_shaping_loss(x, Uniform(0.0, 1.0), dim=1, mask=mask, ties=True)
    expected = reference_loss(np.array([0.3, 0.3, 0.8]), lambda v: v, ties=True)
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_masked_out_values_get_no_gradient():
    x = torch.tensor([0.1, 0.4, 0.9, 0.3], dtype=F64, requires_grad=True)
    mask = torch.tensor([True, True, True, False])
    batch_shaping_loss(x, Beta(2.0, 2.0), mask=mask).backward()
    assert x.grad[3] == 0
    assert (x.grad[:3] != 0).all()


def test_mask_all_true_equals_no_mask():
    x = torch.rand(3, 10, dtype=F64)
    mask = torch.ones_like(x, dtype=torch.bool)
    torch.testing.assert_close(
        batch_shaping_loss(x, Uniform(0.0, 1.0), dim=1, mask=mask),
        batch_shaping_loss(x, Uniform(0.0, 1.0), dim=1),
    )


# --- logits ------------------------------------------------------------------------------------

LOGIT_PRIORS = {
    "relaxed bernoulli": lambda: RelaxedBernoulli(torch.tensor(0.3, dtype=F64), probs=0.7),
    "symmetric beta": lambda: SymmetricBeta(torch.tensor(0.9, dtype=F64)),
    "beta per group": lambda: Beta(torch.tensor([0.5, 3.0], dtype=F64), 2.0),
    "normal (no logit form)": lambda: Normal(torch.tensor(0.6, dtype=F64), 0.1),
}


@pytest.mark.parametrize("name", LOGIT_PRIORS)
def test_logits_equal_sigmoid_inputs_at_moderate_values(name):
    z = torch.randn(40, 2, dtype=F64) * 4
    prior = LOGIT_PRIORS[name]()
    torch.testing.assert_close(
        batch_shaping_loss(z, prior, dim=0, logits=True),
        batch_shaping_loss(torch.sigmoid(z), prior, dim=0),
        rtol=1e-9,
        atol=1e-12,
    )


@pytest.mark.parametrize("name", ["relaxed bernoulli", "symmetric beta", "beta per group"])
def test_logits_far_out_stay_exact_in_float32(name):
    # Values whose sigmoid rounds to 0 or 1 in float32 keep their CDF and a finite gradient.
    z64 = torch.tensor([-300.0, -120.0, -40.0, -5.0, 0.0, 5.0, 20.0, 45.0, 120.0, 300.0], dtype=F64)
    z64 = torch.stack([z64, z64.flip(0) * 0.5], dim=1)
    prior = LOGIT_PRIORS[name]()
    expected = batch_shaping_loss(z64, prior, dim=0, logits=True)
    z32 = z64.float().requires_grad_()
    loss = batch_shaping_loss(z32, prior, dim=0, logits=True)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert torch.isfinite(z32.grad).all()


def test_relaxed_bernoulli_exact_quantiles_have_no_floor():
    # Regression: the original clipped values to [1e-3, 1 - 1e-3] before the relaxed Bernoulli
    # CDF, which left a positive loss on the exact quantiles. In value space (float64) and in
    # logit space at temperature 0.01, where float32 values cannot represent the quantiles.
    levels = torch.arange(1, 501, dtype=F64) / 501
    prior = RelaxedBernoulli(torch.tensor(0.4, dtype=F64), probs=0.8)
    quantile_logits = (torch.logit(levels) + prior.logits) / prior.temperature
    assert (torch.sigmoid(quantile_logits) < 1e-3).any()
    assert batch_shaping_loss(torch.sigmoid(quantile_logits), prior) < 1e-20
    cold = RelaxedBernoulli(torch.tensor(0.01), probs=0.8)
    quantile_logits = ((torch.logit(levels) + cold.logits) / cold.temperature).float()
    assert batch_shaping_loss(quantile_logits, cold, logits=True) < 1e-12


# --- dtypes ------------------------------------------------------------------------------------


def test_float64_is_kept():
    # Regression: the original computed float64 input in float32.
    x = torch.rand(1000, dtype=F64, requires_grad=True)
    prior = Beta(torch.tensor(2.0, dtype=F64), torch.tensor(6.0, dtype=F64))
    loss = batch_shaping_loss(x, prior)
    assert loss.dtype == F64
    expected = reference_loss(x.detach().numpy(), scipy.stats.beta(2, 6).cdf)
    assert loss.item() == pytest.approx(expected, rel=1e-11)
    loss.backward()
    assert x.grad.dtype == F64


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32(dtype):
    # Regression: the original raised TypeError for bfloat16.
    x = torch.rand(200, 3).to(dtype).requires_grad_()
    prior = RelaxedBernoulli(torch.tensor(0.5), probs=0.3)
    loss = batch_shaping_loss(x, prior, dim=0)
    assert loss.dtype == dtype
    expected = batch_shaping_loss(x.detach().float(), prior, dim=0)
    assert loss.float().item() == pytest.approx(expected.item(), rel=1e-2)
    loss.backward()
    assert x.grad.dtype == dtype


# --- gradients ---------------------------------------------------------------------------------


def _distinct(*shape, generator_seed=0, low=0.02, high=0.98):
    generator = torch.Generator().manual_seed(generator_seed)
    values = torch.rand(*shape, dtype=F64, generator=generator) * (high - low) + low
    return values.requires_grad_()


GRADCHECK_CASES = {
    "beta": (lambda x, a, b: batch_shaping_loss(x, Beta(a, b), dim=0), ([0.5, 2.0], [0.8, 3.0])),
    "symmetric beta": (lambda x, a: batch_shaping_loss(x, SymmetricBeta(a), dim=0), ([0.3, 0.9],)),
    "relaxed bernoulli": (
        lambda x, t, logits: batch_shaping_loss(x, RelaxedBernoulli(t, logits=logits), dim=0),
        ([0.3, 1.5], [0.5, -1.0]),
    ),
    "normal": (
        lambda x, m, s: batch_shaping_loss(x, Normal(m, s), dim=0),
        ([0.5, 0.2], [0.2, 1.0]),
    ),
    "beta, logits": (
        lambda x, a, b: batch_shaping_loss(x * 40 - 20, Beta(a, b), dim=0, logits=True),
        ([0.5, 2.0], [0.8, 3.0]),
    ),
    "relaxed bernoulli, logits, mask": (
        lambda x, t: batch_shaping_loss(
            x * 10 - 5,
            RelaxedBernoulli(t, probs=0.7),
            dim=0,
            logits=True,
            mask=torch.arange(12)[:, None] % torch.tensor([3, 4]) != 0,
        ),
        ([0.2, 0.8],),
    ),
}


@pytest.mark.parametrize("name", GRADCHECK_CASES)
def test_gradcheck_loss_wrt_x_and_prior_parameters(name):
    function, parameters = GRADCHECK_CASES[name]
    inputs = (
        _distinct(12, 2),
        *(torch.tensor(p, dtype=F64, requires_grad=True) for p in parameters),
    )
    assert gradcheck(function, inputs, atol=1e-7, rtol=1e-5)


def test_trainable_beta_parameters_learn():
    # Regression: trainable Beta parameters crashed the original on NumPy 2.
    torch.manual_seed(0)
    x = Beta(3.0, 5.0).sample((500,)).double()
    log_a = torch.zeros((), dtype=F64, requires_grad=True)
    log_b = torch.zeros((), dtype=F64, requires_grad=True)
    optimizer = torch.optim.Adam([log_a, log_b], lr=0.1)
    for _ in range(150):
        optimizer.zero_grad()
        loss = batch_shaping_loss(x, Beta(log_a.exp(), log_b.exp()))
        loss.backward()
        optimizer.step()
    assert loss < 1e-3
    assert log_a.exp().item() == pytest.approx(3.0, rel=0.3)
    assert log_b.exp().item() == pytest.approx(5.0, rel=0.3)


# --- bad input ---------------------------------------------------------------------------------


def _x(*shape):
    return torch.rand(*shape)


BAD_INPUT = [
    ("nan in x", lambda: dict(x=torch.tensor([0.1, math.nan, math.nan, 0.3])), "2 non-finite"),
    ("inf in x", lambda: dict(x=torch.tensor([0.1, math.inf, 0.3])), "1 non-finite"),
    (
        "nan kept by mask",
        lambda: dict(x=torch.tensor([0.1, math.nan, 0.3]), mask=torch.tensor([1, 1, 0]).bool()),
        "1 non-finite value.*where mask is True",
    ),
    ("dim out of range", lambda: dict(x=_x(3, 4), dim=2), "dim 2 is out of range"),
    ("negative dim out of range", lambda: dict(x=_x(3, 4), dim=-3), "dim -3 is out of range"),
    ("dim twice", lambda: dict(x=_x(3, 4), dim=(1, -1)), "names a dimension twice"),
    ("dim empty", lambda: dict(x=_x(3, 4), dim=()), "names no sample dimension"),
    ("dim not an int", lambda: dict(x=_x(3, 4), dim=1.0), "dim must be an int"),
    ("dim on a scalar", lambda: dict(x=torch.tensor(0.5), dim=0), "out of range"),
    ("one sample per group", lambda: dict(x=_x(1, 4), dim=0), "at least 2 samples"),
    ("scalar x", lambda: dict(x=torch.tensor(0.5)), "at least 2 samples"),
    ("mask shape", lambda: dict(x=_x(3, 4), mask=torch.ones(4, 3).bool()), "shape of x"),
    ("mask dtype", lambda: dict(x=_x(3, 4), mask=torch.ones(3, 4)), "mask must be a bool"),
    (
        "mask leaves one sample",
        lambda: dict(x=_x(3, 4), dim=1, mask=torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0], [1] * 4])),
        "mask leaves 1 group.*fewer than 2 samples",
    ),
    (
        "prior batch shape",
        lambda: dict(x=_x(10, 3), dim=0, prior=Normal(torch.zeros(4), 1.0)),
        r"batch_shape \(4,\) does not broadcast to the group shape \(3,\)",
    ),
    (
        "prior batch shape, no groups",
        lambda: dict(x=_x(10), prior=Normal(torch.zeros(2), 1.0)),
        r"batch_shape \(2,\) does not broadcast to the group shape \(\)",
    ),
    (
        "multivariate prior",
        lambda: dict(x=_x(10, 2), prior=MultivariateNormal(torch.zeros(2), torch.eye(2))),
        "univariate",
    ),
    ("reduction", lambda: dict(x=_x(10), reduction="avg"), "reduction must be one of"),
    ("integer x", lambda: dict(x=torch.arange(10)), "floating dtype"),
]


def _call(case):
    arguments = {"prior": Normal(0.0, 1.0), **case()}
    if "mask" in arguments and arguments["mask"].dtype == torch.int64:
        arguments["mask"] = arguments["mask"].bool()
    return batch_shaping_loss(arguments.pop("x"), arguments.pop("prior"), **arguments)


@pytest.mark.parametrize(
    "case, match", [case[1:] for case in BAD_INPUT], ids=[case[0] for case in BAD_INPUT]
)
def test_bad_input_raises_value_error_naming_it(case, match):
    with pytest.raises(ValueError, match=match):
        _call(case)


@pytest.mark.parametrize(
    "x, prior", [([0.1, 0.2], Normal(0.0, 1.0)), (torch.rand(3), "normal")], ids=["list", "str"]
)
def test_wrong_types_raise_type_error(x, prior):
    with pytest.raises(TypeError):
        batch_shaping_loss(x, prior)


def test_prior_without_cdf_says_which_to_use():
    with pytest.raises(NotImplementedError, match=r"batchshaping\.distributions"):
        batch_shaping_loss(torch.rand(5), torch.distributions.Beta(2.0, 1.0))


def test_invalid_prior_parameters_raise_before_anything_is_computed():
    # Regression: a Beta a = -1 gave NaN, a Normal std = 0 gave 0.0909.
    with pytest.raises(ValueError, match="concentration1"):
        batch_shaping_loss(torch.rand(10), Beta(-1.0, 2.0))
    with pytest.raises(ValueError, match="scale"):
        batch_shaping_loss(torch.rand(10), Normal(0.6, 0.0, validate_args=True))


def test_validate_false_skips_the_synchronising_checks():
    x = torch.tensor([0.1, math.nan, 0.3])
    assert torch.isnan(batch_shaping_loss(x, Normal(0.0, 1.0, validate_args=False), validate=False))
    # An empty group contributes 0 rather than NaN.
    mask = torch.tensor([[True, True], [False, False]])
    loss = batch_shaping_loss(
        torch.rand(2, 2), Normal(0.0, 1.0), dim=1, mask=mask, validate=False, reduction="none"
    )
    assert loss[1] == 0 and torch.isfinite(loss).all()


def test_no_host_sync_inside_torch_compile(restore_validation):
    # fullgraph=True fails on any graph break, and reading a tensor's value on the host is one:
    # with the default validate=True the synchronising checks must switch themselves off.
    def loss(x, mask, raw):
        prior = RelaxedBernoulli(torch.sigmoid(raw), logits=raw, validate_args=False)
        return batch_shaping_loss(x, prior, dim=1, mask=mask, ties=True, logits=True)

    torch._dynamo.reset()
    compiled = torch.compile(loss, backend="eager", fullgraph=True)
    x, mask, raw = torch.randn(4, 30), torch.rand(4, 30) > 0.3, torch.zeros(4)
    torch.testing.assert_close(compiled(x, mask, raw), loss(x, mask, raw))


# --- properties --------------------------------------------------------------------------------

finite = st.floats(-50, 50, allow_nan=False, width=64)


def _groups(min_groups=1, max_groups=4, min_size=2, max_size=30):
    return st.tuples(st.integers(min_groups, max_groups), st.integers(min_size, max_size)).flatmap(
        lambda shape: hnp.arrays(np.float64, shape, elements=finite)
    )


PROPERTY_PRIORS = [
    Normal(torch.tensor(0.0, dtype=F64), 3.0),
    RelaxedBernoulli(torch.tensor(0.5, dtype=F64), probs=0.3),
]


@settings(max_examples=40, deadline=None)
@given(values=_groups(), which=st.sampled_from([0, 1]), logits=st.booleans(), ties=st.booleans())
def test_loss_is_between_zero_and_one(values, which, logits, ties):
    loss = batch_shaping_loss(
        torch.from_numpy(values), PROPERTY_PRIORS[which], dim=1, logits=logits, ties=ties
    )
    assert 0 <= loss.item() <= 1


@settings(max_examples=40, deadline=None)
@given(values=_groups(), seed=st.integers(0, 2**16), ties=st.booleans())
def test_invariant_to_permutations_along_dim(values, seed, ties):
    x = torch.from_numpy(values)
    permutation = torch.randperm(x.shape[1], generator=torch.Generator().manual_seed(seed))
    prior = PROPERTY_PRIORS[0]
    torch.testing.assert_close(
        batch_shaping_loss(x, prior, dim=1, ties=ties, reduction="none"),
        batch_shaping_loss(x[:, permutation], prior, dim=1, ties=ties, reduction="none"),
        rtol=1e-12,
        atol=1e-15,
    )


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(2, 300),
    loc=st.floats(-2, 2),
    scale=st.floats(0.1, 3),
    temperature=st.floats(0.05, 3),
    probs=st.floats(0.05, 0.95),
)
def test_exact_quantiles_give_a_loss_near_zero(n, loc, scale, temperature, probs):
    levels = torch.arange(1, n + 1, dtype=F64) / (n + 1)
    normal = Normal(torch.tensor(loc, dtype=F64), scale)
    assert batch_shaping_loss(normal.icdf(levels), normal) < 1e-20
    relaxed = RelaxedBernoulli(torch.tensor(temperature, dtype=F64), probs=probs)
    quantile_logits = (torch.logit(levels) + relaxed.logits) / relaxed.temperature
    assert batch_shaping_loss(quantile_logits, relaxed, logits=True) < 1e-20
    shuffled = quantile_logits.flip(0)
    assert batch_shaping_loss(shuffled, relaxed, logits=True, ties=True) < 1e-20


@settings(max_examples=30, deadline=None)
@given(values=_groups(min_groups=2, max_groups=5), ties=st.booleans())
def test_a_stack_of_groups_gives_the_mean_of_the_group_losses(values, ties):
    x = torch.from_numpy(values)
    loc = torch.linspace(-1, 1, x.shape[0], dtype=F64)
    stacked = batch_shaping_loss(x.t(), Normal(loc, 2.0), dim=0, ties=ties)
    alone = [batch_shaping_loss(x[g], Normal(loc[g], 2.0), ties=ties) for g in range(len(x))]
    torch.testing.assert_close(stacked, torch.stack(alone).mean(), rtol=1e-12, atol=1e-15)


@settings(max_examples=30, deadline=None)
@given(
    values=_groups(min_groups=1, max_groups=4, min_size=4),
    seed=st.integers(0, 2**16),
    logits=st.booleans(),
    ties=st.booleans(),
)
def test_a_mask_equals_slicing_each_group(values, seed, logits, ties):
    x = torch.from_numpy(values)
    generator = torch.Generator().manual_seed(seed)
    mask = torch.rand(x.shape, generator=generator) < 0.6
    mask[:, :2] = True  # at least 2 values in each group
    prior = PROPERTY_PRIORS[1]
    options = {"logits": logits, "ties": ties}
    masked = batch_shaping_loss(x, prior, dim=1, mask=mask, reduction="none", **options)
    for g in range(len(x)):
        sliced = batch_shaping_loss(x[g][mask[g]], prior, **options)
        torch.testing.assert_close(masked[g], sliced, rtol=1e-12, atol=1e-15)


# --- the module --------------------------------------------------------------------------------


def test_module_calls_the_function():
    x = torch.rand(20, 3, dtype=F64)
    mask = torch.rand(20, 3) > 0.2
    prior = SymmetricBeta(torch.tensor([0.2, 0.5, 0.8], dtype=F64))
    module = BatchShapingLoss(prior, dim=0, ties=True, reduction="sum")
    torch.testing.assert_close(
        module(x, mask), batch_shaping_loss(x, prior, dim=0, mask=mask, ties=True, reduction="sum")
    )
    assert "reduction='sum'" in repr(module)


class LearnableNormal(nn.Module):
    """A prior with learnable parameters, rebuilt on every call."""

    def __init__(self) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.tensor(0.0))
        self.log_scale = nn.Parameter(torch.tensor(0.0))

    def forward(self) -> Normal:
        return Normal(self.loc, self.log_scale.exp())


def test_module_lets_gradients_reach_a_learnable_prior():
    torch.manual_seed(0)
    prior = LearnableNormal()
    module = BatchShapingLoss(prior)
    assert {name for name, _ in module.named_parameters()} == {"prior.loc", "prior.log_scale"}
    x = torch.randn(400) * 0.5 + 2.0
    optimizer = torch.optim.Adam(module.parameters(), lr=0.05)
    for _ in range(200):
        optimizer.zero_grad()
        loss = module(x)
        loss.backward()
        optimizer.step()
    assert prior.loc.item() == pytest.approx(2.0, abs=0.1)
    assert prior.log_scale.exp().item() == pytest.approx(0.5, abs=0.1)


def test_module_with_a_fixed_prior_passes_gradients_to_its_parameters():
    loc = torch.tensor(0.3, requires_grad=True)
    module = BatchShapingLoss(Normal(loc, 1.0))
    module(torch.randn(10)).backward()
    assert loc.grad is not None and loc.grad != 0


@pytest.mark.parametrize(
    "prior, options, error",
    [
        ("normal", {}, TypeError),
        (Normal(0.0, 1.0), {"reduction": "avg"}, ValueError),
    ],
)
def test_module_rejects_bad_options(prior, options, error):
    with pytest.raises(error):
        BatchShapingLoss(prior, **options)


# --- the module carries its prior ------------------------------------------------------------


@pytest.mark.parametrize(
    "prior",
    [
        Beta(torch.tensor([2.0, 0.5]), torch.tensor(6.0)),
        SymmetricBeta(torch.tensor(0.8)),
        RelaxedBernoulli(torch.tensor(0.4), probs=torch.tensor([0.2, 0.7])),
        torch.distributions.Normal(torch.tensor([0.3, 0.6]), 0.2),
    ],
    ids=lambda prior: type(prior).__name__,
)
def test_module_moves_its_prior_with_to_and_double(prior):
    module = BatchShapingLoss(prior, dim=0)
    x = torch.rand(50, 2, dtype=torch.float64)
    expected = batch_shaping_loss(x, prior, dim=0)
    moved = module.double()
    tensors = [getattr(moved.prior, name) for name in moved.prior.names]
    assert tensors and all(t.dtype == torch.float64 for t in tensors)
    found = moved(x)
    assert found.dtype == torch.float64
    torch.testing.assert_close(found, expected.double(), rtol=1e-6, atol=1e-8)
    on_meta = BatchShapingLoss(prior, dim=0).to("meta")
    assert all(getattr(on_meta.prior, name).device.type == "meta" for name in on_meta.prior.names)


def test_module_state_dict_carries_the_prior():
    module = BatchShapingLoss(Beta(torch.tensor([2.0, 0.5]), torch.tensor([6.0, 1.5])), dim=0)
    state = module.state_dict()
    assert set(state) == {"prior.concentration1", "prior.concentration0"}
    other = BatchShapingLoss(Beta(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 1.0])), dim=0)
    x = torch.rand(60, 2)
    assert not torch.allclose(other(x), module(x))
    other.load_state_dict(state)
    torch.testing.assert_close(other(x), module(x))


def test_module_prior_keeps_gradients_to_its_tensors():
    a = torch.tensor(2.0, requires_grad=True)
    BatchShapingLoss(Beta(a, 6.0))(torch.rand(100)).backward()
    assert a.grad is not None and a.grad != 0
