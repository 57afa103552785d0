"""sync=True: the loss of the global batch on 2 and 3 gloo ranks against one process, in float64.

Each case runs in the ranks of a pool (``conftest.py``: started once per module); the test
process computes the same loss on the concatenated batch, without any process group, and
compares: every rank's loss equals it, every rank's values receive W times their slice of its
gradient, the prior's parameters its gradient, and under DDP the parameters of a model its
gradient. The ``rank_*`` functions run in the ranks.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from batchshaping import BatchShapingLoss, ECDFMemory, GeneralizedBatchShaping, batch_shaping_loss
from batchshaping.distributions import Beta

F64 = torch.float64
HERE = __file__
GROUPS = 5
KINDS = ("fixed", "learned", "generalized")
# Uneven on purpose: a rank with one sample, a rank with none.
SIZES = {2: [6, 11], 3: [7, 1, 12]}
LOSS_TOLERANCE = {"rtol": 1e-12, "atol": 1e-15}
GRAD_TOLERANCE = {"rtol": 1e-10, "atol": 1e-13}


class LearnedBeta(nn.Module):
    """One Beta prior per group with learned log-concentrations (the same in every process)."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.log_a = nn.Parameter(torch.linspace(-0.5, 1.0, groups, dtype=F64))
        self.log_b = nn.Parameter(torch.linspace(1.5, 0.0, groups, dtype=F64))

    def forward(self) -> Beta:
        return Beta(self.log_a.exp(), self.log_b.exp())


def criterion(kind: str, sync: bool, **options) -> nn.Module:
    """The loss module of a kind: a fixed prior, a learned per-group Beta, or gBaS."""
    if kind == "fixed":
        return BatchShapingLoss(Beta(2.0, 6.0), sync=sync, **options)
    if kind == "learned":
        return BatchShapingLoss(LearnedBeta(GROUPS), sync=sync, **options)
    options.pop("reduction", None)  # gBaS averages its groups
    initial = torch.linspace(0.6, 2.0, GROUPS, dtype=F64)
    return GeneralizedBatchShaping(
        GROUPS,
        Beta(3.0, 7.0),
        prior="beta",
        init_concentration1=initial,
        init_concentration0=initial.flip(0),
        sync=sync,
        **options,
    ).double()


def loss_and_gradients(kind, sync, x, mask, options) -> dict:
    """The loss of x (and mask), the gradient of x and of the loss module's parameters."""
    module = criterion(kind, sync, **options)
    x = torch.tensor(x, requires_grad=True)
    loss = module(x, None if mask is None else torch.tensor(mask))
    loss.sum().backward()
    return {
        "loss": loss.detach().numpy(),
        "grad": x.grad.numpy(),
        "parameters": [p.grad.numpy() for p in module.parameters()],
    }


def rank_loss(rank, world, kind, x, mask, options):
    return loss_and_gradients(kind, True, x, mask, options)


# --- the global batch against one process ------------------------------------------------------


def split(array: np.ndarray, sizes: list[int], axis: int = 0) -> list[np.ndarray]:
    return np.split(array, np.cumsum(sizes)[:-1], axis=axis)


def make_batch(case: str, world: int, seed: int):
    """(x, mask, options, sizes, per-rank masks) of a case: the global batch and its split."""
    generator = np.random.default_rng(seed)
    sizes = [5, 0, 9] if case == "empty rank" else SIZES[world]
    total = sum(sizes)
    options = {"dim": 0}
    shape = (total, GROUPS)
    if case == "two sample dims":
        shape, options = (total, GROUPS, 3), {"dim": (0, 2)}
    x = generator.beta(1.5, 3.0, size=shape)
    if case == "ties":
        x = np.round(x, 1)  # ties within and across ranks
        options["ties"] = True
    if case == "logits":
        x, options["logits"] = np.log(x / (1 - x)), True
    if case in ("reduction none", "reduction sum"):
        options["reduction"] = case.split()[1]
    masks = [None] * world
    if case == "masked":
        # Rank 0 has no mask; the others mask about a third of their values.
        mask = generator.random(shape) > 0.33
        masks = [None, *split(mask, sizes)[1:]]
        mask[: sizes[0]] = True
    else:
        mask = None
    return x, mask, options, sizes, masks


COMMON_CASES = ("plain", "masked", "ties")
FIXED_CASES = ("reduction none", "reduction sum", "logits", "two sample dims")


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize(
    "kind, case",
    [(kind, case) for kind in KINDS for case in COMMON_CASES]
    + [("fixed", case) for case in FIXED_CASES]
    + [("learned", "empty rank")],
)
def test_every_rank_computes_the_loss_of_the_global_batch(
    world, kind, case, two_ranks, three_ranks
):
    if case == "empty rank" and world == 2:
        pytest.skip("the empty rank is the middle one of 3")
    ranks = {2: two_ranks, 3: three_ranks}[world]
    x, mask, options, sizes, masks = make_batch(case, world, seed=world)
    answers = ranks.run(
        HERE,
        "rank_loss",
        [(kind, part, masks[r], options) for r, part in enumerate(split(x, sizes))],
    )
    single = loss_and_gradients(kind, False, x, mask, options)
    grads = split(single["grad"], sizes)
    for rank, answer in enumerate(answers):
        np.testing.assert_allclose(answer["loss"], single["loss"], **LOSS_TOLERANCE)
        # DDP divides by W: each rank's values receive W times their slice.
        np.testing.assert_allclose(answer["grad"], world * grads[rank], **GRAD_TOLERANCE)
        for found, expected in zip(answer["parameters"], single["parameters"], strict=True):
            np.testing.assert_allclose(found, expected, **GRAD_TOLERANCE)
    assert np.abs(single["grad"]).max() > 1e-3  # gradients that could have been wrong


class GatedModel(nn.Module):
    """A linear layer whose sigmoid outputs the loss module shapes: what DDP trains."""

    def __init__(self, kind: str, sync: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(4, GROUPS, dtype=F64)
        self.criterion = criterion(kind, sync, dim=0)

    def forward(self, inputs):
        return self.criterion(torch.sigmoid(self.linear(inputs)))


def rank_ddp(rank, world, kind, inputs):
    model = GatedModel(kind, sync=True)
    ddp = DistributedDataParallel(model)  # kept: its hooks average the gradients in backward
    loss = ddp(torch.tensor(inputs))
    loss.backward()
    return {"loss": loss.item(), "grads": [p.grad.numpy() for p in model.parameters()]}


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("kind", KINDS)
def test_ddp_averaged_gradients_are_those_of_one_process(world, kind, two_ranks, three_ranks):
    ranks = {2: two_ranks, 3: three_ranks}[world]
    inputs = np.random.default_rng(world).normal(size=(sum(SIZES[world]), 4))
    answers = ranks.run(HERE, "rank_ddp", [(kind, part) for part in split(inputs, SIZES[world])])
    model = GatedModel(kind, sync=False)
    loss = model(torch.tensor(inputs))
    loss.backward()
    for answer in answers:
        assert answer["loss"] == pytest.approx(loss.item(), rel=1e-12)
        for found, parameter in zip(answer["grads"], model.parameters(), strict=True):
            np.testing.assert_allclose(found, parameter.grad.numpy(), **GRAD_TOLERANCE)
    assert model.linear.weight.grad.abs().max() > 1e-4


# --- process groups ----------------------------------------------------------------------------


def rank_in_group(rank, world, members, x):
    """The loss over the group of ``members`` (every rank creates every group, as it must)."""
    groups = {tuple(m): dist.new_group(list(m)) for m in members}
    mine = next(group for m, group in groups.items() if rank in m)
    x = torch.tensor(x, requires_grad=True)
    loss = batch_shaping_loss(x, Beta(2.0, 6.0), dim=0, sync=True, process_group=mine)
    loss.backward()
    return loss.item(), x.grad.numpy()


def test_a_group_of_one_rank_is_the_plain_loss(two_ranks):
    x = np.random.default_rng(0).random((2, 9, GROUPS))
    answers = two_ranks.run(HERE, "rank_in_group", [([[0], [1]], x[r]) for r in range(2)])
    for rank, (loss, grad) in enumerate(answers):
        plain = torch.tensor(x[rank], requires_grad=True)
        expected = batch_shaping_loss(plain, Beta(2.0, 6.0), dim=0)
        expected.backward()
        assert loss == expected.item()
        np.testing.assert_array_equal(grad, plain.grad.numpy())


def test_process_group_limits_the_gather_to_its_ranks(three_ranks):
    x = np.random.default_rng(1).random((3, 6, GROUPS))
    members = [[0, 2], [1]]
    answers = three_ranks.run(HERE, "rank_in_group", [(members, x[r]) for r in range(3)])
    joined = torch.tensor(np.concatenate([x[0], x[2]]), requires_grad=True)
    expected = batch_shaping_loss(joined, Beta(2.0, 6.0), dim=0)
    expected.backward()
    for rank, slot in ((0, slice(0, 6)), (2, slice(6, 12))):
        loss, grad = answers[rank]
        assert loss == pytest.approx(expected.item(), rel=1e-12)
        np.testing.assert_allclose(grad, 2 * joined.grad[slot].numpy(), **GRAD_TOLERANCE)
    assert answers[1][0] == batch_shaping_loss(torch.tensor(x[1]), Beta(2.0, 6.0), dim=0).item()


def test_sync_without_a_process_group_says_how_to_start_one():
    with pytest.raises(RuntimeError, match=r"init_process_group.*torchrun"):
        batch_shaping_loss(torch.rand(8), Beta(2.0, 6.0), sync=True)


# --- the memory holds the global batch ---------------------------------------------------------


def memory_steps(batches, sync: bool):
    """Losses of three steps with a memory of 16, the last step's gradient, the memory."""
    memory = ECDFMemory(16)
    losses = []
    for step, batch in enumerate(batches):
        x = torch.tensor(batch, requires_grad=step == len(batches) - 1)
        losses.append(batch_shaping_loss(x, Beta(2.0, 6.0), dim=0, sync=sync, memory=memory))
    losses[-1].backward()
    state = memory.state_dict()
    return (
        [loss.item() for loss in losses],
        x.grad.numpy(),
        {k: v.numpy() for k, v in state.items()},
    )


def rank_memory(rank, world, batches):
    return memory_steps(batches, sync=True)


@pytest.mark.parametrize("world", [2, 3])
def test_a_memory_with_sync_holds_the_global_batch(world, two_ranks, three_ranks):
    ranks = {2: two_ranks, 3: three_ranks}[world]
    generator = np.random.default_rng(world)
    batches = [generator.beta(2.0, 5.0, size=(sum(SIZES[world]), GROUPS)) for _ in range(3)]
    per_rank = [[split(b, SIZES[world])[r] for b in batches] for r in range(world)]
    answers = ranks.run(HERE, "rank_memory", [(part,) for part in per_rank])
    losses, grad, state = memory_steps(batches, sync=False)
    for rank, (found_losses, found_grad, found_state) in enumerate(answers):
        np.testing.assert_allclose(found_losses, losses, **LOSS_TOLERANCE)
        np.testing.assert_allclose(
            found_grad, world * split(grad, SIZES[world])[rank], **GRAD_TOLERANCE
        )
        for name, value in state.items():
            np.testing.assert_array_equal(found_state[name], value)
    assert losses[2] != losses[0]  # the memory changed the loss


# --- bad input: every rank raises, none hangs --------------------------------------------------


def rank_error(rank, world, x, options):
    """The error the loss raises on this rank (type and message), then a loss in step."""
    x = torch.tensor(x).requires_grad_(options.pop("requires_grad", False))
    try:
        batch_shaping_loss(x, Beta(2.0, 6.0), sync=True, **options)
        error = None
    except Exception as raised:
        error = (type(raised).__name__, str(raised))
    after = batch_shaping_loss(torch.full((4,), 0.1 * (rank + 1)), Beta(2.0, 6.0), sync=True)
    return error, after.item()


def _values(shape, dtype=np.float64, nan=False):
    x = np.linspace(0.1, 0.9, int(np.prod(shape)), dtype=dtype).reshape(shape)
    if nan:
        x[0] = np.nan
    return x


DISAGREEMENTS = [
    # (what differs, rank 0's and rank 1's (x, options), what every rank's message says)
    (
        "number of groups",
        [(_values((6, 3)), {"dim": 0}), (_values((6, 4)), {"dim": 0})],
        ["number of groups: 3 on rank 0; 4 on rank 1", "group shape", "(3,) on rank 0"],
    ),
    (
        "group shape",
        [(_values((6, 2, 3)), {"dim": 0}), (_values((6, 3, 2)), {"dim": 0})],
        ["group shape (x's shape without its sample dimensions): (2, 3) on rank 0; (3, 2)"],
    ),
    (
        "dtype",
        [(_values((6, 3), np.float32), {"dim": 0}), (_values((6, 3)), {"dim": 0})],
        ["x's dtype: torch.float32 on rank 0; torch.float64 on rank 1"],
    ),
    (
        "options",
        [(_values((6, 3)), {"dim": 0, "ties": True}), (_values((6, 3)), {"dim": 0})],
        ["options: ties=True, logits=False, reduction='mean' on rank 0; ties=False"],
    ),
    (
        "gradient",
        [(_values((6, 3)), {"dim": 0, "requires_grad": True}), (_values((6, 3)), {"dim": 0})],
        ["whether x requires a gradient: True on rank 0; False on rank 1"],
    ),
]


@pytest.mark.parametrize(
    "per_rank, says", [d[1:] for d in DISAGREEMENTS], ids=[d[0] for d in DISAGREEMENTS]
)
def test_ranks_that_disagree_all_raise_naming_what_differs(per_rank, says, two_ranks):
    answers = two_ranks.run(HERE, "rank_error", per_rank)
    for error, after in answers:
        assert error[0] == "ValueError"
        assert error[1].startswith("sync=True: the ranks disagree on")
        for part in says:
            assert part in error[1]
        assert after == answers[0][1]  # the ranks are still in step


def test_a_rank_whose_own_check_fails_lets_the_others_raise(three_ranks):
    per_rank = [
        (_values((6, 3)), {"dim": 0}),
        (_values((6, 3), nan=True), {"dim": 0}),
        (_values((6, 3)), {"dim": 2}),
    ]
    answers = three_ranks.run(HERE, "rank_error", per_rank)
    (zero, _), (one, _), (two, _) = answers
    assert one == ("ValueError", "x has 3 non-finite value(s) (NaN or infinite)")
    assert two == ("ValueError", "dim 2 is out of range for x with 2 dimension(s)")
    assert zero == (
        "ValueError",
        "sync=True: ranks 1, 2 rejected their arguments (the error raised there says why), so "
        "no rank computes the loss",
    )
    assert len({after for _, after in answers}) == 1


@pytest.mark.parametrize("sizes", [(0, 0), (0, 1)])
def test_the_global_batch_needs_two_samples_per_group(sizes, two_ranks):
    per_rank = [(np.zeros((size, 3)), {"dim": 0}) for size in sizes]
    answers = two_ranks.run(HERE, "rank_error", per_rank)
    for size, (error, _) in zip(sizes, answers, strict=True):
        assert error == (
            "ValueError",
            f"x: every group needs at least 2 samples, but dim=0 gives groups of {sum(sizes)} "
            f"across the ranks (x has shape ({size}, 3))",
        )
