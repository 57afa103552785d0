"""The ``batchshaping demo`` command, through its entry point.

Most cases call the entry point ``batchshaping.cli.main`` in this process, as a CLI framework's
runner would: a process costs seconds of torch start-up each. A few run the installed command as
a real process: a demo, a bad input (exit status) and Ctrl-C while rendering.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from batchshaping import cli

FINAL_LOSS = re.compile(r"final loss: (\S+)")

DEMOS = {
    "beta": ["beta", "--a", "2", "--b", "6"],
    "beta, density bounds": ["beta", "--a", "2", "--b", "6", "--density-bounds", "1e-3", "100"],
    "beta, exact gradient": ["beta", "--a", "2", "--b", "6", "--exact-gradient"],
    "symbeta": ["symbeta", "--a", "0.9"],
    "relaxed-bernoulli": ["relaxed-bernoulli", "--p", "0.2", "--temperature", "0.25"],
    "normal": ["normal", "--mean", "0.6", "--std", "0.1", "--init-range", "1"],
    "gbas": ["gbas", "--lr", "0.3"],
}


def command() -> list[str]:
    script = Path(sys.executable).with_name("batchshaping")
    return [str(script)] if script.exists() else [sys.executable, "-m", "batchshaping.cli"]


@pytest.mark.parametrize("name", list(DEMOS))
def test_demo_trains_and_prints_the_final_loss_last(tmp_path, run_cli, name):
    arguments = ["demo", *DEMOS[name], "--steps", "3", "--points", "60", "--no-render"]
    status, stdout, stderr = run_cli(arguments, tmp_path)
    assert status == 0, stderr
    last_line = stdout.strip().splitlines()[-1]
    match = FINAL_LOSS.fullmatch(last_line)
    assert match, stdout
    assert 0 <= float(match.group(1)) < 1
    assert "training" in stderr  # the progress bar
    assert list(tmp_path.iterdir()) == []  # --no-render writes nothing
    if name == "gbas":
        assert "group loss:" in stdout and "hyperprior loss:" in stdout


def test_beta_demo_reproduces_the_original_notebook(tmp_path, run_cli):
    """The notebook's Beta(2, 6) example: the original's code ends at 2.44e-6 in 100 steps."""
    finals = {}
    for extra in ([], ["--exact-gradient"]):
        arguments = ["demo", "beta", "--a", "2", "--b", "6", "--steps", "100", "--no-render"]
        status, stdout, stderr = run_cli([*arguments, *extra], tmp_path)
        assert status == 0, stderr
        finals[bool(extra)] = float(FINAL_LOSS.fullmatch(stdout.strip().splitlines()[-1])[1])
    assert finals[False] <= 1.5 * 2.44e-6
    # The exact density strands the points that start where it is almost zero.
    assert finals[True] > 100 * finals[False]


def test_installed_command_runs_a_demo_and_rejects_bad_input(tmp_path):
    # Two real processes at once: the console script, and python -m batchshaping.cli.
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    demo = ["demo", *DEMOS["normal"], "--steps", "3", "--points", "60", "--no-render"]
    wrong = ["demo", "beta", "--a", "-1", "--b", "6", "--out", "beta.gif"]
    processes = [
        subprocess.Popen(
            arguments, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for arguments, folder in [
            ([*command(), *demo], good),
            ([sys.executable, "-m", "batchshaping.cli", *wrong], bad),
        ]
    ]
    (out, err), (_, bad_err) = (process.communicate(timeout=120) for process in processes)
    assert processes[0].returncode == 0, err
    assert FINAL_LOSS.fullmatch(out.strip().splitlines()[-1]), out
    assert processes[1].returncode == 2
    assert bad_err.count("\n") == 1 and "--a" in bad_err
    assert list(good.iterdir()) == [] and list(bad.iterdir()) == []


def gif_frames_and_size(path: Path) -> tuple[int, tuple[int, int]]:
    from PIL import Image

    with Image.open(path) as image:
        return image.n_frames, image.size


def test_rendering_writes_one_frame_per_step(tmp_path, run_cli):
    pytest.importorskip("matplotlib")
    status, stdout, stderr = run_cli(
        ["demo", *DEMOS["normal"], "--steps", "4", "--points", "50", "--out", "fit.gif"], tmp_path
    )
    assert status == 0, stderr
    assert gif_frames_and_size(tmp_path / "fit.gif") == (4, (700, 850))
    assert "rendering" in stderr
    assert stdout.strip().splitlines()[-1].startswith("final loss: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.gif"]  # no temporary left


def test_png_is_the_last_frame(tmp_path, run_cli):
    pytest.importorskip("matplotlib")
    status, _, stderr = run_cli(
        ["demo", *DEMOS["symbeta"], "--steps", "2", "--points", "50", "--out", "fit.PNG"], tmp_path
    )
    assert status == 0, stderr
    from PIL import Image

    with Image.open(tmp_path / "fit.PNG") as image:
        assert (image.format, image.size) == ("PNG", (700, 850))


def test_generalized_rendering_draws_every_other_step_and_the_last(tmp_path, run_cli):
    pytest.importorskip("matplotlib")
    arguments = ["demo", "gbas", "--steps", "4", "--points", "40", "--out", "gbas.gif"]
    status, _, stderr = run_cli(arguments, tmp_path)
    assert status == 0, stderr
    assert gif_frames_and_size(tmp_path / "gbas.gif") == (3, (900, 480))  # steps 1, 3, 4


def test_every_chooses_the_frames(tmp_path, run_cli):
    pytest.importorskip("matplotlib")
    arguments = [*DEMOS["normal"], "--steps", "7", "--points", "30", "--every", "3"]
    status, _, stderr = run_cli(["demo", *arguments, "--out", "fit.gif"], tmp_path)
    assert status == 0, stderr
    assert gif_frames_and_size(tmp_path / "fit.gif")[0] == 3  # steps 1, 4, 7


BAD_INPUT = [
    # (arguments after "demo", the option the message must name)
    (["dirichlet"], "PRIOR"),
    (["beta", "--a", "2"], "--b"),
    (["beta", "--b", "2"], "--a"),
    (["symbeta"], "--a"),
    (["relaxed-bernoulli", "--p", "0.2"], "--temperature"),
    (["relaxed-bernoulli", "--temperature", "0.2"], "--p"),
    (["normal", "--mean", "0.5"], "--std"),
    (["normal", "--std", "0.5"], "--mean"),
    (["beta", "--a", "0", "--b", "6"], "--a"),
    (["beta", "--a", "-1", "--b", "6"], "--a"),
    (["beta", "--a", "2", "--b", "0"], "--b"),
    (["beta", "--a", "nan", "--b", "6"], "--a"),
    (["beta", "--a", "two", "--b", "6"], "--a"),
    (["symbeta", "--a", "1"], "--a"),
    (["symbeta", "--a", "0"], "--a"),
    (["symbeta", "--a", "1.5"], "--a"),
    (["relaxed-bernoulli", "--p", "0", "--temperature", "0.2"], "--p"),
    (["relaxed-bernoulli", "--p", "1", "--temperature", "0.2"], "--p"),
    (["relaxed-bernoulli", "--p", "0.2", "--temperature", "0"], "--temperature"),
    (["relaxed-bernoulli", "--p", "0.2", "--temperature", "-0.5"], "--temperature"),
    (["normal", "--mean", "0.5", "--std", "0"], "--std"),
    (["normal", "--mean", "0.5", "--std", "-1"], "--std"),
    (["beta", "--a", "2", "--b", "6", "--p", "0.5"], "--p"),
    (["gbas", "--a", "2"], "--a"),
    (["beta", "--a", "2", "--b", "6", "--steps", "0"], "--steps"),
    (["beta", "--a", "2", "--b", "6", "--steps", "2.5"], "--steps"),
    (["beta", "--a", "2", "--b", "6", "--points", "1"], "--points"),
    (["gbas", "--points", "1"], "--points"),
    (["beta", "--a", "2", "--b", "6", "--lr", "0"], "--lr"),
    (["beta", "--a", "2", "--b", "6", "--lr", "-0.1"], "--lr"),
    (["beta", "--a", "2", "--b", "6", "--init-range", "0"], "--init-range"),
    (["beta", "--a", "2", "--b", "6", "--fps", "0"], "--fps"),
    (["beta", "--a", "2", "--b", "6", "--every", "0"], "--every"),
    (["beta", "--a", "2", "--b", "6", "--density-bounds", "1", "0.5"], "--density-bounds"),
    (["beta", "--a", "2", "--b", "6", "--density-bounds", "-1", "5"], "--density-bounds"),
    (["beta", "--a", "2", "--b", "6", "--density-bounds", "1e-3"], "--density-bounds"),
    (["normal", "--mean", "0", "--std", "1", "--density-bounds", "0", "1"], "--density-bounds"),
    (["normal", "--mean", "0", "--std", "1", "--exact-gradient"], "--exact-gradient"),
    (["beta", "--a", "2", "--b", "6", "--exact-gradient", "--density-bounds", "0", "1"], "--exact"),
    (["beta", "--a", "2", "--b", "6", "--out", "missing/beta.gif"], "--out"),
    (["beta", "--a", "2", "--b", "6", "--out", "beta.jpg"], "--out"),
    (["beta", "--a", "2", "--b", "6", "--out", "beta"], "--out"),
    (["beta", "--a", "2", "--b", "6", "--out", "beta.gif", "--no-render"], "--out"),
]


@pytest.mark.parametrize(("arguments", "option"), BAD_INPUT, ids=" ".join)
def test_bad_input_exits_2_naming_the_option_and_writes_nothing(
    tmp_path, run_cli, arguments, option
):
    status, stdout, stderr = run_cli(["demo", *arguments], tmp_path)
    assert status == 2
    assert stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert option in lines[0] and "error" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_help_lists_the_priors_and_options(run_cli, tmp_path):
    status, stdout, _ = run_cli(["demo", "--help"], tmp_path)
    assert status == 0
    for name in ["beta", "symbeta", "relaxed-bernoulli", "normal", "gbas"]:
        assert name in stdout
    names = ["--a", "--b", "--p", "--temperature", "--mean", "--std", "--density-bounds"]
    for name in [*names, "--exact-gradient"]:
        assert name in stdout
    options = ["--steps", "--points", "--lr", "--init-range", "--seed", "--logits"]
    options += ["--out", "--no-render", "--fps", "--every"]
    for option in options:
        assert option in stdout


def test_an_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    def interrupted(source, destination):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cli._write_atomically(tmp_path / "fit.gif", b"GIF89a")
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_while_rendering_leaves_nothing_at_out(tmp_path):
    pytest.importorskip("matplotlib")
    process = subprocess.Popen(
        # Enough frames that rendering is still running when the interrupt arrives.
        [
            *command(),
            "demo",
            *DEMOS["normal"],
            "--steps",
            "1500",
            "--points",
            "50",
            "--out",
            "fit.gif",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # A shell that runs the suite in the background starts it with SIGINT ignored, and a
        # Python started with SIGINT ignored never raises KeyboardInterrupt: restore the default.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    seen = b""
    deadline = time.monotonic() + 120
    # Wait for the rendering bar to move past its first frame, then interrupt.
    while not re.search(rb"rendering: +\d+%\|[^|]*\| +[1-9]", seen):
        chunk = process.stderr.read1(4096)
        assert chunk and time.monotonic() < deadline, seen.decode(errors="replace")
        seen += chunk
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, (seen + stderr).decode(errors="replace")
    assert b"interrupted" in stderr
    assert list(tmp_path.iterdir()) == []


def test_write_atomically_replaces_and_keeps_usual_permissions(tmp_path):
    path = tmp_path / "fit.gif"
    path.write_bytes(b"old")
    cli._write_atomically(path, b"new")
    assert path.read_bytes() == b"new"
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["fit.gif"]
