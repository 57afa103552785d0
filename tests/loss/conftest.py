"""Pools of torch.distributed ranks (gloo, CPU) for the tests of ``sync=True``.

A pool of W processes is started once per test module that asks for it (``two_ranks``,
``three_ranks``): starting a process that imports torch takes seconds, a case takes
milliseconds. Each rank runs this file (``runpy``) as ``__rank__``: it joins a gloo group whose
store the test process serves on a port the system chose, then runs the cases it is sent, each a
function of a test module (loaded by path) called with that rank's arguments. Every wait has a
time-out, so a failure never hangs the suite: gloo's collectives time out after
``COLLECTIVE_TIMEOUT`` seconds, and a pool whose ranks do not answer within ``CASE_TIMEOUT`` is
killed (and started afresh for the next test).
"""

from __future__ import annotations

import datetime
import importlib.util
import os
import queue
import runpy
import time
import traceback
from multiprocessing import forkserver
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

COLLECTIVE_TIMEOUT = 20
CASE_TIMEOUT = 60
START_TIMEOUT = 120
# torch._dynamo: DDP imports it (and sympy) when it is first built, seconds.
PRELOAD = ["numpy", "pytest", "torch._dynamo", "torch.nn.parallel", "_rank_warmup"]


def _serve(rank: int, world: int, port: int, tasks, results) -> None:
    """A rank: join the group, then run cases until told to stop."""
    torch.set_num_threads(1)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # one machine
    timeout = datetime.timedelta(seconds=COLLECTIVE_TIMEOUT)
    store = dist.TCPStore("127.0.0.1", port, None, False, timeout)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world, timeout=timeout)
    results.put((rank, True, "ready"))
    modules: dict[str, object] = {}
    while (task := tasks.get()) is not None:
        path, name, args = task
        try:
            if path not in modules:
                spec = importlib.util.spec_from_file_location(f"rank_cases_{len(modules)}", path)
                modules[path] = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(modules[path])
            results.put((rank, True, getattr(modules[path], name)(rank, world, *args)))
        except BaseException:
            results.put((rank, False, traceback.format_exc()))
    dist.destroy_process_group()


if __name__ == "__rank__":  # in a rank, run by Ranks below with these globals
    _serve(rank, world, port, tasks, results)  # noqa: F821


def _start_fork_server(context) -> None:
    """The process the ranks are forked from, with torch imported and the kernels loaded.

    Seconds once instead of seconds per rank. It imports ``_rank_warmup`` from next to this file,
    found through ``PYTHONPATH``, extended for the moment it starts (Python 3.11's fork server
    does not take the test process's ``sys.path``).
    """
    context.set_forkserver_preload(PRELOAD)
    here = str(Path(__file__).resolve().parent)
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [here, before]))
    try:
        forkserver.ensure_running()
    finally:
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before


class Ranks:
    """W gloo ranks on the CPU that run the cases they are given; see the module docstring."""

    def __init__(self, world: int) -> None:
        self.world = world
        self.processes: list = []

    def start(self) -> None:
        self.stop()
        context = torch.multiprocessing.get_context("forkserver")
        _start_fork_server(context)
        # The test process serves the store: port 0 lets the system choose a free port.
        self.store = dist.TCPStore("127.0.0.1", 0, None, True, wait_for_workers=False)
        self.results = context.Queue()
        self.tasks = [context.Queue() for _ in range(self.world)]
        for rank in range(self.world):
            names = {"rank": rank, "world": self.world, "port": self.store.port}
            names |= {"tasks": self.tasks[rank], "results": self.results}
            process = context.Process(
                target=runpy.run_path,
                args=(__file__,),
                kwargs={"init_globals": names, "run_name": "__rank__"},
                daemon=True,
            )
            process.start()
            self.processes.append(process)
        self._collect(START_TIMEOUT)

    def run(self, path: str | Path, name: str, per_rank: list[tuple]) -> list:
        """``name(rank, world, *per_rank[rank])`` of the module at ``path`` on every rank."""
        assert len(per_rank) == self.world
        if not self.processes:
            self.start()
        for rank, args in enumerate(per_rank):
            self.tasks[rank].put((str(path), name, args))
        return self._collect(CASE_TIMEOUT)

    def run_all(self, path: str | Path, name: str, *args) -> list:
        """The same arguments on every rank."""
        return self.run(path, name, [args] * self.world)

    def _collect(self, timeout: float) -> list:
        deadline = time.monotonic() + timeout
        answers: dict[int, object] = {}
        failures = []
        while len(answers) + len(failures) < self.world:
            try:
                rank, ok, value = self.results.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                missing = sorted(set(range(self.world)) - set(answers))
                self.stop()
                pytest.fail(f"ranks {missing} of {self.world} did not answer in {timeout} s")
            if ok:
                answers[rank] = value
            else:
                failures.append(f"rank {rank}:\n{value}")
        if failures:
            self.stop()  # the others may wait in a collective: start afresh
            pytest.fail("\n".join(failures))
        return [answers[rank] for rank in range(self.world)]

    def stop(self) -> None:
        for rank, process in enumerate(self.processes):
            if process.is_alive():
                self.tasks[rank].put(None)
        for process in self.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
        self.processes = []


@pytest.fixture(scope="module")
def two_ranks():
    ranks = Ranks(2)
    yield ranks
    ranks.stop()


@pytest.fixture(scope="module")
def three_ranks():
    ranks = Ranks(3)
    yield ranks
    ranks.stop()
