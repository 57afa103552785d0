"""Every Python example of the README runs, and prints what the README shows after it.

An example is a ```python block; when the next block (after at most blank lines) is a plain ```
block, that is its expected output, compared line by line with trailing spaces dropped. Each
example runs in a fresh namespace, in this process, with one torch thread (as the figures were
made, so that reductions add in one order).
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.MULTILINE | re.DOTALL)


def _examples() -> list[tuple[int, str, str | None]]:
    """(line number, code, expected output or None) of every python block."""
    text = README.read_text()
    blocks = [(m.start(), m.end(), m.group(1), m.group(2)) for m in FENCE.finditer(text)]
    examples = []
    for index, (start, end, language, body) in enumerate(blocks):
        if language != "python" or body.lstrip().startswith(">>>"):
            continue  # doctest blocks are run by pytest's --doctest-glob
        expected = None
        if index + 1 < len(blocks):
            next_start, _, next_language, next_body = blocks[index + 1]
            if next_language == "" and not text[end:next_start].strip():
                expected = next_body
        examples.append((text.count("\n", 0, start) + 1, body, expected))
    return examples


EXAMPLES = _examples()


def test_the_readme_has_examples_with_outputs():
    assert sum(expected is not None for _, _, expected in EXAMPLES) >= 8


@pytest.mark.parametrize(
    "code, expected", [example[1:] for example in EXAMPLES], ids=[f"line {e[0]}" for e in EXAMPLES]
)
def test_readme_example_prints_what_the_readme_shows(
    code, expected, one_thread, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    monkeypatch.setenv("MPLBACKEND", "Agg")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
    if expected is not None:
        found = [line.rstrip() for line in printed.getvalue().rstrip("\n").split("\n")]
        assert found == [line.rstrip() for line in expected.rstrip("\n").split("\n")]
