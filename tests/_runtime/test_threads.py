"""The package's threads: follow torch's thread count, survive fork, serve two Python threads;
kernels with a C entry point run on torch's OpenMP threads where it has them."""

from __future__ import annotations

import threading

import pytest
import torch
from torch.distributions import Normal

from batchshaping import batch_shaping_loss, betainc
from batchshaping._runtime import threads
from batchshaping.distributions import Beta

# Large enough that the ranking and betainc share their work out over threads.
N = 400_000


def _losses(seed: int) -> list[float]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(N, generator=generator)
    grouped = torch.rand(4, N // 4, generator=generator)
    a = torch.tensor([0.5, 1.0, 2.0, 4.0])
    return [
        batch_shaping_loss(x, Beta(2.0, 6.0)).item(),
        batch_shaping_loss(grouped, Beta(a, 3.0), dim=1, reduction="sum").item(),
        batch_shaping_loss(x, Normal(0.5, 0.2)).item(),
        betainc(2.0, 6.0, x.double()).sum().item(),
    ]


def _in_child(connection, package_threads):
    torch.set_num_threads(1)  # as DataLoader workers do: torch's own threads do not survive
    with threads.limit(package_threads):
        connection.send((_losses(0), threads.team.available()))
    connection.close()


@pytest.mark.parametrize("package_threads", [1, 2])
def test_a_forked_child_computes_the_same_losses(
    two_threads, package_threads, monkeypatch, forked_child
):
    submitted = []
    original = threads._submit
    monkeypatch.setattr(threads, "_submit", lambda *args: submitted.append(1) or original(*args))
    expected = _losses(0)  # starts the pool in the parent
    assert submitted, "the parent's call should have used the pool"
    losses, teams = forked_child(_in_child, package_threads)
    # float32 sums of 400,000 terms: torch's reductions add in another order on one thread.
    assert losses == pytest.approx(expected, rel=1e-5)
    assert teams == ("pool",), "a forked child must not use OpenMP's threads"


def test_two_python_threads_get_what_each_would_get_alone(two_threads):
    alone = {seed: _losses(seed) for seed in (1, 2)}
    found: dict[int, list[list[float]]] = {1: [], 2: []}
    errors = []

    def work(seed):
        try:
            for _ in range(3):
                found[seed].append(_losses(seed))
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    workers = [threading.Thread(target=work, args=(seed,)) for seed in (1, 2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(300)
    assert not errors and not any(worker.is_alive() for worker in workers)
    for seed in (1, 2):
        assert all(result == alone[seed] for result in found[seed]), seed


def test_one_torch_thread_means_no_pool(monkeypatch, one_thread):
    submitted = []
    original = threads._submit
    monkeypatch.setattr(threads, "_submit", lambda *args: submitted.append(1) or original(*args))
    _losses(3)
    assert submitted == []


def test_run_tasks_runs_every_task_once_and_raises_the_first_error():
    done = []
    threads.run_tasks([lambda k=k: done.append(k) for k in range(20)], threads=3)
    assert sorted(done) == list(range(20))

    def fail():
        raise RuntimeError("task failed")

    with pytest.raises(RuntimeError, match="task failed"):
        threads.run_tasks([fail, lambda: None, lambda: None], threads=2)
    with pytest.raises(ValueError, match="threads must be an int >= 1"), threads.limit(0):
        pass


_NEEDS_OPENMP = pytest.mark.skipif(
    "openmp" not in threads.team.available(), reason="torch has no OpenMP runtime here"
)


@_NEEDS_OPENMP
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_betainc_runs_on_torchs_openmp_threads_and_agrees_with_the_pool(
    two_threads, monkeypatch, dtype
):
    """Runs of shared parameters go to GOMP_parallel with the package's thread count; the
    package's pool gives the same bits."""
    teams = []
    parallel = threads._openmp_parallel()
    monkeypatch.setattr(
        threads,
        "_openmp_parallel",
        lambda: lambda *args: teams.append(args[2]) or parallel(*args),
    )
    generator = torch.Generator().manual_seed(5)
    grid = torch.rand(3, N // 3, generator=generator, dtype=dtype).requires_grad_()
    a = torch.tensor([0.7, 2.0, 40.0], dtype=dtype)[:, None].requires_grad_()
    b = torch.tensor(6.0, dtype=dtype, requires_grad=True)

    def results():
        value = betainc(a, b, grid)
        gradients = torch.autograd.grad(value.sum(), (a, b, grid))
        return [value.detach(), *gradients]

    on_openmp = results()
    assert teams and all(count == 2 for count in teams)
    teams.clear()
    with threads.team.use("pool"):
        on_pool = results()
    assert not teams
    for got, expected in zip(on_openmp, on_pool, strict=True):
        assert torch.equal(got, expected)


def test_run_copies_calls_the_entry_once_on_each_thread(two_threads):
    """Whichever team runs them, ``threads`` copies run, each exactly once."""
    import numpy as np

    from batchshaping._runtime.jit import c_entry
    from batchshaping._runtime.pointers import take

    @c_entry
    def count(data):
        take(data, 0)

    for team in threads.team.available():
        for copies in (1, 2, 5):
            counter = np.zeros(1, dtype=np.int64)
            with threads.team.use(team):
                threads.run_copies(count.address, counter.ctypes.data, copies)
            assert counter[0] == copies, (team, copies)
