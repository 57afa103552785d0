"""The example notebooks run end to end (with a few steps) and are committed without outputs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))


def test_the_notebooks_are_there():
    assert [path.name for path in NOTEBOOKS] == [
        "batch_shaping.ipynb",
        "gated_network.ipynb",
        "generalized_batch_shaping.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_is_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Both notebooks run at once (two kernels), each from an empty folder, in quick mode."""
    # The parameter cell of each notebook reads this and keeps a few points and steps.
    patch = pytest.MonkeyPatch()
    patch.setenv("BATCHSHAPING_NOTEBOOK_QUICK", "1")
    patch.setenv("MPLBACKEND", "Agg")
    runs = {}
    for path in NOTEBOOKS:
        folder = tmp_path_factory.mktemp(path.stem)
        notebook = nbformat.read(path, as_version=4)
        client = nbclient.NotebookClient(
            notebook,
            timeout=120,
            kernel_name="python3",
            resources={"metadata": {"path": str(folder)}},
        )
        runs[path.stem] = (client, notebook, folder)

    async def execute_all():
        await asyncio.gather(*(client.async_execute() for client, _, _ in runs.values()))

    try:
        asyncio.run(execute_all())
    finally:
        patch.undo()
    return {name: (notebook, folder) for name, (_, notebook, folder) in runs.items()}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs(executed, path):
    notebook, folder = executed[path.stem]
    printed = "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "stream"
    )
    assert "final loss:" in printed
    shown = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "image/gif" in output.get("data", {})
    ]
    assert shown, "no animation displayed"
    assert list(folder.iterdir()) == []  # the notebooks write no files
