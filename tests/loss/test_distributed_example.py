"""examples/distributed.py: DDP on 2 CPU processes launched by torchrun, briefly; its measures."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "distributed.py"


def run(*arguments: str) -> str:
    result = subprocess.run(
        [sys.executable, *arguments], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_torchrun_trains_on_two_processes_and_counts_the_bytes_it_moves():
    # torchrun --standalone finds a free port itself.
    printed = run(
        "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        str(EXAMPLE), "--steps", "3", "--batch", "6",
    )  # fmt: skip
    assert "the 2 ranks' batch-shaping losses are identical: True" in printed
    assert "per-rank batch sizes [6, 10]" in printed
    # The other rank's 10 float32 values of each of the 24 gates, padded (rank 0 has 6), in the
    # forward beside 25 int64s of metadata; as many gradients back.
    expected = {"forward": 25 * 8 + 10 * 4 * 24, "backward": 10 * 4 * 24}
    for part, payload in expected.items():
        found = re.search(rf"{part}: +(\d+) bytes received = .*\((\d+)\) \+", printed)
        measured, counted = map(int, found.groups())
        assert counted == payload
        # What gloo adds to each collective is a few hundred bytes, whatever the data.
        assert payload <= measured <= payload + 1000


def test_without_communication_a_larger_memory_comes_closer_to_the_global_batch():
    printed = run(str(EXAMPLE), "--alternatives", "--ranks", "64", "--per-rank", "32")
    own, *memories = [float(e) for e in re.findall(r"loss (\d+\.\d+)%", printed)]
    assert len(memories) == 3
    assert own > memories[0] > memories[1] > memories[2] and memories[2] < own / 20
