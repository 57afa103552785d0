"""Fixtures and markers shared by the whole suite.

- ``@pytest.mark.cuda`` tests are skipped where no CUDA device is available.
- ``restore_validation``: ``torch.compile`` switches torch.distributions' global
  ``validate_args`` default off for the whole process; tests that compile put it back.
- ``one_thread``, ``two_threads`` (a test) and ``one_thread_per_module`` (a module, with
  ``pytestmark = pytest.mark.usefixtures("one_thread_per_module")``): torch's thread count for
  their duration, restored after.
- ``run_cli``: ``run_cli(arguments, folder)`` runs ``batchshaping <arguments>`` in this process
  from ``folder`` and returns (exit status, stdout, stderr).
- ``forked_child``: ``forked_child(target, *args)`` runs ``target(connection, *args)`` in a child
  made by ``fork`` and returns what it sent on ``connection``; fails, rather than hangs, if the
  child sends nothing within a minute, and if it exits with an error.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os

import pytest
import torch


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def restore_validation():
    default = torch.distributions.Distribution._validate_args
    yield
    torch.distributions.Distribution.set_default_validate_args(default)


@contextlib.contextmanager
def _torch_threads(count: int):
    saved = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


@pytest.fixture
def one_thread():
    with _torch_threads(1):
        yield


@pytest.fixture
def two_threads():
    with _torch_threads(2):
        yield


@pytest.fixture(scope="module")
def one_thread_per_module():
    # Small work per step: a second thread only adds contention on a busy machine.
    with _torch_threads(1):
        yield


@pytest.fixture
def run_cli(capsys):
    from batchshaping import cli

    def run(arguments: list[str], folder) -> tuple[int, str, str]:
        cwd = os.getcwd()
        os.chdir(folder)
        try:
            try:
                status = cli.main(arguments)
            except SystemExit as exit:
                status = exit.code
        finally:
            os.chdir(cwd)
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


@pytest.fixture
def forked_child():
    def run(target, *args):
        context = multiprocessing.get_context("fork")
        receiver, sender = context.Pipe(duplex=False)
        child = context.Process(target=target, args=(sender, *args))
        child.start()
        sender.close()
        answered = receiver.poll(60)
        if not answered:
            child.kill()
        child.join(10)
        assert answered, "the forked child hung"
        answer = receiver.recv()
        assert child.exitcode == 0
        return answer

    return run
