"""ECDFMemory: the empirical CDF of the current values among the remembered ones, the queue."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
from torch import nn
from torch.autograd import gradcheck

from batchshaping import BatchShapingLoss, ECDFMemory, GeneralizedBatchShaping, batch_shaping_loss
from batchshaping.distributions import Beta

F64 = torch.float64


def reference_loss(current, remembered, a, b, mask=None, ties=False) -> np.ndarray:
    """Per group, in numpy and scipy: (1/n) sum over the current values of (R / (n + M + 1) - F)^2.

    R is the rank among the current and remembered values, a remembered value before a current
    one it ties with (or, with ties, the count of values <= it). Groups last: (groups, N).
    """
    losses = []
    for group in range(current.shape[0]):
        kept = current[group] if mask is None else current[group][mask[group]]
        both = np.concatenate([remembered[group], kept])
        cdf = scipy.stats.beta.cdf(kept, a[group], b[group])
        if ties:
            ranks = np.sum(both[None, :] <= kept[:, None], axis=1)
        else:
            order = np.argsort(both, kind="stable")  # remembered first among equals
            ranks = np.empty(len(both), dtype=int)
            ranks[order] = np.arange(1, len(both) + 1)
            ranks = ranks[len(remembered[group]) :]
        losses.append(np.mean((ranks / (len(both) + 1) - cdf) ** 2))
    return np.array(losses)


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- the loss ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, -3, 2.5, True, "8"])
def test_size_must_be_an_int_of_at_least_one(size):
    with pytest.raises(ValueError, match="size must be an int >= 1"):
        ECDFMemory(size)


@pytest.mark.parametrize(
    "options",
    [{}, {"ties": True}, {"reduction": "none"}, {"reduction": "sum"}, {"logits": True}, "mask"],
)
def test_an_empty_memory_gives_the_plain_loss(options):
    x = torch.rand(40, 3, dtype=F64, generator=generator(0))
    if options == {"ties": True}:
        # Only with ties=True is each tied value's gradient defined (by its shared CDF).
        x = x.round(decimals=1)
    if options == "mask":
        options = {"mask": torch.rand(40, 3, generator=generator(1)) > 0.3}
    prior = Beta(torch.tensor([0.5, 2.0, 3.0], dtype=F64), 2.0)
    found = x.clone().requires_grad_()
    expected = x.clone().requires_grad_()
    with_memory = batch_shaping_loss(found, prior, dim=0, memory=ECDFMemory(10), **options)
    plain = batch_shaping_loss(expected, prior, dim=0, **options)
    with_memory.sum().backward()
    plain.sum().backward()
    torch.testing.assert_close(with_memory, plain, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(found.grad, expected.grad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_matches_a_reference_over_the_current_values(ties, masked):
    a, b = np.array([0.7, 2.0, 5.0]), np.array([1.5, 6.0, 2.0])
    prior = Beta(torch.tensor(a), torch.tensor(b))
    earlier = torch.rand(12, 3, dtype=F64, generator=generator(2)).round(decimals=1)
    current = torch.rand(9, 3, dtype=F64, generator=generator(3)).round(decimals=1)  # ties
    mask = torch.rand(9, 3, generator=generator(4)) > 0.3 if masked else None
    memory = ECDFMemory(20)
    batch_shaping_loss(earlier, prior, dim=0, memory=memory)
    loss = batch_shaping_loss(
        current, prior, dim=0, mask=mask, ties=ties, reduction="none", memory=memory
    )
    expected = reference_loss(
        current.T.numpy(),
        earlier.T.numpy(),
        a,
        b,
        mask=None if mask is None else mask.T.numpy(),
        ties=ties,
    )
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-12)


def test_gradients_reach_the_current_values_and_the_prior_alone():
    memory = ECDFMemory(30)
    batch_shaping_loss(
        torch.rand(30, 2, dtype=F64, generator=generator(5)), Beta(2.0, 3.0), dim=0, memory=memory
    )
    memory.eval()  # gradcheck calls the loss many times: the queue must not move
    x = torch.rand(7, 2, dtype=F64, generator=generator(6)).requires_grad_()
    log_a = torch.tensor([0.1, 0.6], dtype=F64, requires_grad=True)

    def loss(x, log_a):
        return batch_shaping_loss(x, Beta(log_a.exp(), 3.0), dim=0, memory=memory)

    assert gradcheck(loss, (x, log_a))
    assert not memory.values.requires_grad
    torch.autograd.grad(loss(x, log_a), [x, log_a])  # nothing else in the graph to reach


# --- the queue ---------------------------------------------------------------------------------


def remembered(memory: ECDFMemory) -> list[list[float]]:
    """The values held in each group, sorted."""
    return [sorted(v[k].tolist()) for v, k in zip(memory.values, memory.valid, strict=True)]


def test_the_queue_keeps_the_last_size_values_of_every_group():
    memory = ECDFMemory(7)
    prior = Beta(2.0, 2.0)
    batches = [torch.rand(n, 2, dtype=F64, generator=generator(n)) for n in (3, 2, 4, 9, 2)]
    seen = []
    for batch in batches:
        batch_shaping_loss(batch, prior, dim=0, memory=memory)
        seen.append(batch)
        last = torch.cat(seen)[-7:]  # a batch of 9 > 7 keeps its last 7
        assert remembered(memory) == [sorted(column.tolist()) for column in last.T]
    assert memory.group_shape == (2,)
    assert memory.counts().tolist() == [7, 7]


def test_masked_values_take_a_slot_but_no_part():
    memory = ECDFMemory(4)
    x = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=F64)
    batch_shaping_loss(
        x, Beta(2.0, 2.0), mask=torch.tensor([True, False, True, True]), memory=memory
    )
    assert memory.counts().item() == 3
    assert sorted(memory.values[memory.valid].tolist()) == [0.1, 0.3, 0.4]


def test_eval_freezes_the_queue_and_reset_forgets_it():
    memory = ECDFMemory(5)
    prior = Beta(2.0, 2.0)
    batch_shaping_loss(torch.rand(3, 2, generator=generator(7)), prior, dim=0, memory=memory)
    held = memory.values.clone()
    memory.eval()
    batch_shaping_loss(torch.rand(3, 2, generator=generator(8)), prior, dim=0, memory=memory)
    assert torch.equal(memory.values, held)
    memory.reset()
    assert memory.group_shape is None and memory.counts().item() == 0
    # Forgotten, the group shape may change.
    batch_shaping_loss(
        torch.rand(3, 4, generator=generator(9)), prior, dim=0, memory=memory.train()
    )
    assert memory.group_shape == (4,)


def test_state_dict_and_to_carry_the_queue():
    prior = Beta(2.0, 6.0)
    memory = ECDFMemory(16)
    for seed in range(3):
        batch_shaping_loss(torch.rand(6, 3, generator=generator(seed)), prior, dim=0, memory=memory)
    restored = ECDFMemory(16)
    restored.load_state_dict(memory.state_dict())
    x = torch.rand(6, 3, generator=generator(10))
    assert torch.equal(
        batch_shaping_loss(x, prior, dim=0, memory=restored.eval()),
        batch_shaping_loss(x, prior, dim=0, memory=memory.eval()),
    )
    assert memory.double().values.dtype == F64
    assert int(memory.position) == 18 % 16
    with pytest.raises(RuntimeError, match="size mismatch for values"):
        ECDFMemory(8).load_state_dict(memory.state_dict())


def test_a_memory_for_other_groups_or_another_device_is_an_error():
    memory = ECDFMemory(8)
    batch_shaping_loss(torch.rand(4, 3), Beta(2.0, 2.0), dim=0, memory=memory)
    with pytest.raises(
        ValueError, match=r"memory holds groups of shape \(3,\), but x has .*\(5,\)"
    ):
        batch_shaping_loss(torch.rand(4, 5), Beta(2.0, 2.0), dim=0, memory=memory)
    with pytest.raises(ValueError, match="memory is on meta, x on cpu"):
        batch_shaping_loss(torch.rand(4, 3), Beta(2.0, 2.0), dim=0, memory=memory.to("meta"))


def test_the_modules_hold_the_memory():
    loss = BatchShapingLoss(Beta(2.0, 6.0), dim=0, memory=ECDFMemory(8))
    loss(torch.rand(4, 3))
    assert {"memory.values", "memory.valid", "memory.position"} <= set(loss.state_dict())
    gbas = GeneralizedBatchShaping(3, Beta(3.0, 7.0), dim=0, memory=ECDFMemory(8))
    gbas(torch.rand(4, 3))
    assert gbas.memory.counts().tolist() == [4, 4, 4]
    with pytest.raises(TypeError, match="memory must be an ECDFMemory or None, got int"):
        BatchShapingLoss(Beta(2.0, 6.0), memory=8)
    with pytest.raises(TypeError, match="memory must be an ECDFMemory"):
        batch_shaping_loss(torch.rand(4), Beta(2.0, 6.0), memory=nn.Linear(1, 1))


# --- what it is for ----------------------------------------------------------------------------


def test_a_memory_brings_the_loss_of_8_values_close_to_that_of_512():
    # Values drawn from the prior itself: the expected loss of n values is 1 / (6 (n + 1)), and
    # ranked among M remembered ones 1 / (6 (n + M + 1)). A given memory's own deviation from the
    # prior biases the loss of the steps that share it, so the mean is taken over 64 groups (64
    # independent queues) and 200 steps. This seed prints: 8 values 0.01812 (1/54 = 0.01852),
    # with a memory of 504 3.363e-4, 512 values 3.209e-4 (1/3078 = 3.249e-4).
    prior = Beta(2.0, 6.0)
    torch.manual_seed(0)
    memory = ECDFMemory(504)

    def mean_loss(samples: int, steps: int, memory: ECDFMemory | None = None) -> float:
        batches = [prior.sample((samples, 64)).double() for _ in range(steps)]
        return np.mean([batch_shaping_loss(b, prior, dim=0, memory=memory).item() for b in batches])

    mean_loss(8, 63, memory)  # fills it
    small, remembering = mean_loss(8, 200), mean_loss(8, 200, memory)
    large = mean_loss(512, 20)
    print(f"8 values {small:.4g}, with a memory of 504 {remembering:.4g}, 512 values {large:.4g}")
    assert small == pytest.approx(1 / 54, rel=0.1)
    assert large == pytest.approx(1 / 3078, rel=0.1)
    assert remembering == pytest.approx(1 / 3078, rel=0.1)
    assert abs(remembering - large) < 0.01 * abs(small - large)


@pytest.mark.cuda
def test_on_cuda_the_memory_never_synchronises_with_the_host():
    memory = ECDFMemory(32).cuda()
    prior = Beta(torch.tensor(2.0, device="cuda"), torch.tensor(6.0, device="cuda"))
    x = torch.rand(8, 3, device="cuda", requires_grad=True)
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            loss = batch_shaping_loss(x, prior, dim=0, memory=memory, validate=False)
            loss.backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert memory.counts().tolist() == [24, 24, 24]
