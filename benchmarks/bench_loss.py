"""Benchmark of batch_shaping_loss: ours against torch.sort, np.argsort and the original's approach.

Every case times, in this run and on the same float32 tensor:

- ours: ``batch_shaping_loss`` (or ``GeneralizedBatchShaping``) forward plus backward, gradients
  to x and to any learned prior parameters;
- ``torch.sort`` and ``np.argsort`` of the tensor along the sample dimension (values only, no
  backward): the cost of ranking alone;
- the original's approach, re-created here (not its code): ``torch.sort``, then for Beta priors
  the CDF from scipy on the CPU with the density clipped to [1e-3, 100] as the gradient with
  respect to x, and for learned Beta parameters central differences over 11 scipy CDFs per
  parameter (a +- 0.05, ``np.gradient``); relaxed Bernoulli (inputs clipped to [1e-3, 1 - 1e-3])
  and Normal CDFs in torch operations. Where the original matched every group against every
  group's Beta prior (a bug), this re-creation matches each group with its own, which costs it
  G times less; the original has no masks, so there each group's kept values are sliced out.

Every time is the median of several runs after warm-up, and every ratio compares times from this
run. Also measured: the peak extra memory of a forward plus backward, and the first loss in a
fresh process with an empty numba cache.

With ``--busy K`` the cases with targets (the fixed priors at N = 1e6, the generalized and
per-group cases, the first loss) run again while K other processes keep K cores busy (plain busy
loops), and are reported beside the quiet run: a training machine is seldom idle.

Run: ``python benchmarks/bench_loss.py [--busy 1]`` (``make bench`` passes ``--busy 1``). Writes
``benchmarks/results/loss.json``, ``benchmarks/results/bench_loss.png`` and ``docs/bench_loss.png``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.stats
import torch
from torch.distributions import Normal

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import (
    RESULTS,
    busy_cores,
    format_table,
    fresh_process_times,
    machine,
    median_times,
    write_results,
)

from batchshaping import (
    Beta,
    GeneralizedBatchShaping,
    RelaxedBernoulli,
    SymmetricBeta,
    batch_shaping_loss,
    betainc,
)
from batchshaping.distributions import prior_traits

DOCS = Path(__file__).resolve().parent.parent / "docs"
SIZES = (10_000, 100_000, 1_000_000, 10_000_000)
# Fewer runs where one run takes seconds.
REPEATS = {10_000_000: (5, 1)}
DEFAULT_REPEATS = (7, 2)

# name: (our prior, the original's family and parameters)
FIXED_PRIORS = {
    "Beta(2, 6)": (lambda: Beta(2.0, 6.0), ("beta", 2.0, 6.0)),
    "Beta(0.6, 0.4)": (lambda: Beta(0.6, 0.4), ("beta", 0.6, 0.4)),
    "SymmetricBeta(0.9)": (lambda: SymmetricBeta(0.9), ("beta", 0.9, 0.1)),
    "Normal(0.6, 0.1)": (lambda: Normal(0.6, 0.1), ("normal", 0.6, 0.1)),
    "RelaxedBernoulli(p 0.3, t 0.5)": (
        lambda: RelaxedBernoulli(0.5, probs=0.3),
        ("relaxed_bernoulli", 0.3, 0.5),
    ),
}


# --- the original's approach, re-created ---------------------------------------------------------

_CLIP = (1e-3, 100.0)
_FD_POINTS, _FD_STEP = 5, 0.05  # 2 * 5 + 1 points over a +- 0.05


class _ScipyBetaCdf(torch.autograd.Function):
    """Beta CDF of each row from scipy; gradient in x the clipped density, in a and b by FD."""

    @staticmethod
    def forward(ctx, values, a, b, learned):
        device = values.device
        host = values.detach().cpu().numpy()
        a_host, b_host = float(a), float(b)
        density = np.clip(scipy.stats.beta.pdf(host, a_host, b_host), *_CLIP)
        cdf = scipy.stats.beta.cdf(host, a_host, b_host)
        saved = [torch.tensor(density, dtype=torch.float32, device=device)]
        if learned:
            for position in (0, 1):
                grid = np.linspace(
                    max(_FD_STEP, (a_host, b_host)[position] - _FD_STEP),
                    (a_host, b_host)[position] + _FD_STEP,
                    2 * _FD_POINTS + 1,
                )
                cdfs = np.stack(
                    [
                        scipy.stats.beta.cdf(host, *((p, b_host) if position == 0 else (a_host, p)))
                        for p in grid
                    ]
                )
                slope = np.gradient(cdfs, grid, axis=0)[_FD_POINTS]
                saved.append(torch.tensor(slope, dtype=torch.float32, device=device))
        ctx.save_for_backward(*saved)
        ctx.learned = learned
        ctx.shapes = (torch.as_tensor(a).shape, torch.as_tensor(b).shape)
        return torch.tensor(cdf, dtype=torch.float32, device=device)

    @staticmethod
    def backward(ctx, grad):
        if not ctx.learned:
            return ctx.saved_tensors[0] * grad, None, None, None
        density, slope_a, slope_b = ctx.saved_tensors
        shape_a, shape_b = ctx.shapes
        grad_a = (slope_a * grad).sum().reshape(shape_a)
        grad_b = (slope_b * grad).sum().reshape(shape_b)
        return density * grad, grad_a, grad_b, None


def _original_cdf(family: str, sorted_rows, first, second, learned: bool = False):
    """The original's CDF of sorted rows (G, N); parameters are numbers or (G,) tensors."""
    if family == "beta":
        rows = []
        for g in range(sorted_rows.shape[0]):
            a = first[g] if isinstance(first, torch.Tensor) and first.ndim else first
            b = second[g] if isinstance(second, torch.Tensor) and second.ndim else second
            rows.append(_ScipyBetaCdf.apply(sorted_rows[g], a, b, learned))
        return torch.stack(rows)
    if family == "normal":
        return 0.5 * (1 + torch.erf((sorted_rows - first) / (np.sqrt(2) * second)))
    clipped = sorted_rows.clamp(1e-3, 1 - 1e-3)
    probs = torch.as_tensor(first, dtype=clipped.dtype)
    temperature = torch.as_tensor(second, dtype=clipped.dtype)
    log_ratio = torch.special.xlog1py(temperature, -clipped) - torch.special.xlogy(
        temperature, clipped
    )
    return torch.sigmoid(-log_ratio - torch.logit(probs))


def original_loss(x, family, first, second, *, dim=None, learned=False, mask=None):
    """The original's loss: groups along ``dim`` (the sample dimension) become rows."""
    rows = x.reshape(1, -1) if dim is None else x.movedim(dim, -1).reshape(-1, x.shape[dim])
    if isinstance(first, torch.Tensor) and first.ndim:
        first, second = first.reshape(-1, 1), second.reshape(-1, 1)
    if mask is not None:
        kept_rows = mask.movedim(dim, -1).reshape(rows.shape)
        losses = []
        for g in range(rows.shape[0]):
            kept = torch.sort(rows[g][kept_rows[g]]).values[None]
            cdf = _original_cdf(family, kept, first[g, 0], second[g, 0], learned)
            ranks = torch.arange(1, kept.shape[1] + 1, device=x.device) / (kept.shape[1] + 1)
            losses.append(((ranks - cdf) ** 2).mean())
        return torch.stack(losses).mean()
    sorted_rows = torch.sort(rows, dim=-1).values
    cdf = _original_cdf(family, sorted_rows, first, second, learned)
    ranks = torch.arange(1, rows.shape[1] + 1, device=x.device) / (rows.shape[1] + 1)
    return ((ranks - cdf) ** 2).mean(-1).mean()


# --- timing --------------------------------------------------------------------------------------


def _forward_backward(loss_fn: Callable[[], torch.Tensor], leaves) -> Callable[[], None]:
    def run():
        for leaf in leaves:
            leaf.grad = None
        loss_fn().backward()

    return run


def _synchronised(fn: Callable[[], object], device: torch.device) -> Callable[[], None]:
    """``fn`` followed, on a CUDA device, by a wait for the device to finish."""
    if device.type != "cuda":
        return fn

    def run():
        fn()
        torch.cuda.synchronize(device)

    return run


def _time_case(case, shape, ours, original, x, dim, repeats, extra=None) -> dict:
    """Times of ours, the original's approach, torch.sort and np.argsort along ``dim``.

    Their runs are interleaved. ``extra`` adds functions timed alongside, reported as
    ``"<name> (ms)"``. On a CUDA device, np.argsort sorts the host copy of the tensor (copy not
    timed).
    """
    count, warmup = repeats
    values = x.detach()
    sort_dim = -1 if dim is None else dim
    flat = values.reshape(-1) if dim is None else values
    host = flat.cpu().numpy()
    device = values.device
    functions = {
        "torch.sort": lambda: torch.sort(flat, dim=sort_dim),
        "np.argsort": lambda: np.argsort(host, axis=sort_dim),
        "ours": ours,
        "original": original,
        **(extra or {}),
    }
    times = median_times(
        {name: _synchronised(fn, device) for name, fn in functions.items()},
        repeats=count,
        warmup=warmup,
    )
    return {
        "case": case,
        "shape": shape,
        "ours (ms)": 1e3 * times["ours"],
        "torch.sort (ms)": 1e3 * times["torch.sort"],
        "np.argsort (ms)": 1e3 * times["np.argsort"],
        "original (ms)": 1e3 * times["original"],
        "ours / torch.sort": times["ours"] / times["torch.sort"],
        "original / torch.sort": times["original"] / times["torch.sort"],
        "runs": count,
        **{f"{name} (ms)": 1e3 * times[name] for name in extra or {}},
    }


def _fixed_priors(sizes=SIZES) -> list[dict]:
    rows = []
    generator = torch.Generator().manual_seed(0)
    for size in sizes:
        x = torch.rand(size, generator=generator).requires_grad_()
        for name, (make_prior, (family, first, second)) in FIXED_PRIORS.items():
            prior = make_prior()
            extra = {}
            if size == 1_000_000 and isinstance(prior, Beta):
                # The floor under the Beta priors: the CDF and density from betainc alone.
                a, b = prior.concentration1, prior.concentration0
                extra["betainc alone"] = _forward_backward(
                    lambda a=a, b=b, x=x: betainc(a, b, x).sum(), [x]
                )
            row = _time_case(
                name,
                f"{size:.0e}",
                _forward_backward(lambda prior=prior, x=x: batch_shaping_loss(x, prior), [x]),
                _forward_backward(
                    lambda f=family, p=first, q=second, x=x: original_loss(x, f, p, q), [x]
                ),
                x,
                None,
                REPEATS.get(size, DEFAULT_REPEATS),
                extra,
            )
            row["n"] = size
            row["target"] = "<= 1.0x at 1e6" if size == 1_000_000 else ""
            rows.append(row)
            print(f"  {name} N={size:.0e}: {row['ours / torch.sort']:.2f}x torch.sort", flush=True)
    return rows


def _cuda() -> list[dict]:
    """Fixed-parameter BaS on the GPU: ours (validate=False, free of host synchronisation)."""
    device = torch.device("cuda")
    rows = []
    generator = torch.Generator(device).manual_seed(0)
    for size in (1_000_000, 10_000_000):
        x = torch.rand(size, generator=generator, device=device).requires_grad_()
        for name, (make_prior, (family, first, second)) in FIXED_PRIORS.items():
            prior = _on_device(make_prior(), device)
            row = _time_case(
                f"{name}, CUDA",
                f"{size:.0e}",
                _forward_backward(
                    lambda prior=prior, x=x: batch_shaping_loss(x, prior, validate=False), [x]
                ),
                _forward_backward(
                    lambda f=family, p=first, q=second, x=x: original_loss(x, f, p, q), [x]
                ),
                x,
                None,
                DEFAULT_REPEATS,
            )
            row["target"] = "<= 1.5x"
            rows.append(row)
            print(f"  {name} N={size:.0e} CUDA: {row['ours / torch.sort']:.2f}x", flush=True)
    return rows


def _on_device(prior, device: torch.device):
    """A prior rebuilt from its traits with its parameters on ``device``."""
    traits = prior_traits(prior)
    tensors = {name: t.to(device) for name, t in traits.parameters(prior).items()}
    return traits.rebuild(prior, tensors)


def _generalized() -> list[dict]:
    rows = []
    generator = torch.Generator().manual_seed(1)

    # Learned relaxed Bernoulli priors, 256 groups of 4096 (samples along dim 0).
    x = torch.rand(4096, 256, generator=generator).requires_grad_()
    gbas = GeneralizedBatchShaping(256, prior="relaxed_bernoulli", dim=0, init_probs=0.3)
    leaves = [x, *gbas.parameters()]

    def original_relaxed_bernoulli():
        return original_loss(x, "relaxed_bernoulli", gbas.probs, gbas.temperature, dim=0)

    rows.append(
        _time_case(
            "gBaS learned RelaxedBernoulli",
            "4096 x 256, dim 0",
            _forward_backward(lambda: gbas(x), leaves),
            _forward_backward(original_relaxed_bernoulli, leaves),
            x,
            0,
            DEFAULT_REPEATS,
        )
    )

    # Learned Beta priors (gradients to a and b), 64 groups of 4096.
    x = torch.rand(4096, 64, generator=generator).requires_grad_()
    gbas = GeneralizedBatchShaping(
        64, prior="beta", dim=0, init_concentration1=2.0, init_concentration0=6.0
    )
    leaves = [x, *gbas.parameters()]

    def original_beta():
        return original_loss(
            x, "beta", gbas.concentration1, gbas.concentration0, dim=0, learned=True
        )

    # The floor under it: betainc's value, d/da, d/db and density at the same values (one pass,
    # one prior per contiguous group, as the loss evaluates them), forward plus backward.
    a = gbas.concentration1.detach()[:, None].requires_grad_()
    b = gbas.concentration0.detach()[:, None].requires_grad_()
    samples_last = x.detach().t().contiguous().requires_grad_()
    row = _time_case(
        "gBaS learned Beta",
        "4096 x 64, dim 0",
        _forward_backward(lambda: gbas(x), leaves),
        _forward_backward(original_beta, leaves),
        x,
        0,
        DEFAULT_REPEATS,
        {
            "betainc alone": _forward_backward(
                lambda: betainc(a, b, samples_last).sum(), [a, b, samples_last]
            )
        },
    )
    row["target"] = "<= 2x quiet, 3x busy"
    rows.append(row)

    # One fixed Beta prior per group, a mask dropping half the values.
    x = torch.rand(4096, 64, generator=generator).requires_grad_()
    mask = torch.rand(4096, 64, generator=generator) < 0.5
    a = torch.linspace(0.5, 4.0, 64)
    b = torch.linspace(6.0, 1.0, 64)
    prior = Beta(a, b)
    rows.append(
        _time_case(
            "per-group Beta, half masked",
            "4096 x 64, dim 0",
            _forward_backward(lambda: batch_shaping_loss(x, prior, dim=0, mask=mask), [x]),
            _forward_backward(lambda: original_loss(x, "beta", a, b, dim=0, mask=mask), [x]),
            x,
            0,
            DEFAULT_REPEATS,
        )
    )
    return rows


# --- memory and the first call, each in a fresh process ------------------------------------------

_MEMORY = textwrap.dedent(
    """
    import re, sys
    import torch
    sys.path.insert(0, {benchmarks!r})
    from bench_loss import original_loss
    from batchshaping import Beta, batch_shaping_loss

    def status():
        text = open("/proc/self/status").read()
        return {{k: int(re.search(k + r":\\s+(\\d+) kB", text).group(1)) * 1024
                for k in ("VmRSS", "VmHWM")}}

    n = {n}
    x = torch.rand(n, generator=torch.Generator().manual_seed(0)).requires_grad_()
    a = torch.tensor(2.0, requires_grad=True)
    b = torch.tensor(6.0, requires_grad=True)
    if {which!r} == "ours":
        def loss():
            return batch_shaping_loss(x, Beta(a, b))
    else:
        def loss():
            return original_loss(x, "beta", a, b, learned=True)

    saved = []
    def pack(tensor):
        saved.append(tensor.untyped_storage().nbytes())
        return tensor

    for _ in range(2):  # compile, create thread pools
        x.grad = a.grad = b.grad = None
        loss().backward()
    x.grad = a.grad = b.grad = None
    open("/proc/self/clear_refs", "w").write("5")  # reset the high-water mark
    before = status()["VmRSS"]
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        value = loss()
    value.backward()
    peak = status()["VmHWM"]
    # What the ranking keeps between calls (its workspace), already resident before the call.
    from batchshaping.loss import workspace_bytes
    kept = workspace_bytes() if {which!r} == "ours" else 0
    print(peak - before, sum(saved), kept)
    """
)


def _memory(n: int = 1_000_000) -> list[dict]:
    """Peak RSS above the baseline during one forward plus backward, in a fresh process.

    glibc is told to serve every block over 64 KiB by mmap (``MALLOC_MMAP_THRESHOLD_``), so a
    freed tensor or array goes back to the system at once and the resident set follows what is
    alive; the high-water mark is reset just before the measured call. Includes x.grad. The
    ranking's workspace, kept from the warm-up calls, is resident before the call: it is reported
    beside the peak and counted with it against the target.
    """
    rows = []
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    for which in ("ours", "original"):
        script = _MEMORY.format(benchmarks=str(Path(__file__).resolve().parent), n=n, which=which)
        output = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True
        )
        if output.returncode:
            raise RuntimeError(output.stderr)
        peak, saved, kept = map(int, output.stdout.split())
        input_bytes = 4 * n
        rows.append(
            {
                "case": f"learned Beta, N = {n:.0e}, float32",
                "approach": which,
                "peak extra (MB)": peak / 1e6,
                "peak extra / input size": peak / input_bytes,
                "saved for backward / input size": saved / input_bytes,
                "kept between calls / input size": kept / input_bytes,
                "peak extra + kept / input size": (peak + kept) / input_bytes,
                "target": "<= 12 with kept" if which == "ours" else "",
            }
        )
    return rows


_FIRST_CALL = textwrap.dedent(
    """
    import time
    start = time.perf_counter()
    import torch
    import batchshaping
    imported = time.perf_counter()
    if {case!r} == "Beta(2, 6), 1e5 values":
        x = torch.rand(100_000).requires_grad_()
        batchshaping.batch_shaping_loss(x, batchshaping.Beta(2.0, 6.0)).backward()
    else:
        x = torch.rand(4096, 8).requires_grad_()
        a = torch.full((8,), 2.0, requires_grad=True)
        b = torch.full((8,), 6.0, requires_grad=True)
        batchshaping.batch_shaping_loss(x, batchshaping.Beta(a, b), dim=0).backward()
    print(imported - start, time.perf_counter() - imported)
    """
)
_FIRST_CALL_CASES = ("Beta(2, 6), 1e5 values", "learned Beta, 4096 x 8, dim 0")


def _first_call(attempts: int = 3) -> list[dict]:
    """Import, then the first loss in a fresh process: empty numba cache, then a warm one."""
    rows = []
    for case in _FIRST_CALL_CASES:
        code = _FIRST_CALL.format(case=case)
        for warm in (False, True):
            runs = fresh_process_times(code, attempts, warm_cache=warm)
            for attempt, (imported, first) in enumerate(runs, 1):
                rows.append(
                    {
                        "case": case,
                        "cache": "warm" if warm else "empty",
                        "run": attempt,
                        "import torch + batchshaping (s)": imported,
                        "first loss (s)": first,
                        "target": "<= 1 s" if warm else "<= 5 s quiet, 10 s busy",
                    }
                )
    return rows


# --- the plot ------------------------------------------------------------------------------------


def _plot(rows: list[dict], description: dict) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(FIXED_PRIORS)
    figure, grid = plt.subplots(2, 3, figsize=(11, 6.6), sharex=True, sharey=True)
    axes = grid.ravel()
    styles = {
        "ours (ms)": ("ours", "tab:blue", "o-"),
        "original (ms)": ("original's approach", "tab:red", "s-"),
        "torch.sort (ms)": ("torch.sort", "tab:gray", "^--"),
        "np.argsort (ms)": ("np.argsort", "tab:green", "v:"),
    }
    for ax, name in zip(axes, names, strict=False):
        case = [row for row in rows if row["case"] == name]
        sizes = [row["n"] for row in case]
        for column, (label, color, style) in styles.items():
            ax.loglog(sizes, [row[column] / 1e3 for row in case], style, color=color, label=label)
        ax.set_title(name, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    for ax in grid[1]:
        ax.set_xlabel("N (values in one group)")
    for ax in grid[:, 0]:
        ax.set_ylabel("forward + backward (s)")
    legend = axes[len(names)]
    legend.axis("off")
    legend.legend(*axes[0].get_legend_handles_labels(), loc="center", frameon=False)
    figure.suptitle(
        f"batch_shaping_loss, float32, CPU ({description['cpus']} cores, "
        f"{description['torch_threads']} torch threads), torch {description['torch']}, "
        f"numpy {description['numpy']}, {description['date']}",
        fontsize=10,
    )
    figure.tight_layout()
    paths = [RESULTS / "bench_loss.png", DOCS / "bench_loss.png"]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110)
    plt.close(figure)
    return paths


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _check_targets(fixed, generalized, memory, first_call, load: str) -> list[str]:
    """The targets of the performance issues, for the rows measured under ``load``."""
    busy = load != "quiet"
    lines = []
    at_million = [row for row in fixed if row["n"] == 1_000_000]
    worst = max(at_million, key=lambda row: row["ours / torch.sort"])
    lines.append(
        f"[{load}] fixed-parameter BaS at N = 1e6 <= 1.0x torch.sort: worst {worst['case']} "
        f"{worst['ours / torch.sort']:.2f}x ({_verdict(worst['ours / torch.sort'] <= 1.0)})"
    )
    beta = next(row for row in generalized if row["case"] == "gBaS learned Beta")
    ratio, bound = beta["ours / torch.sort"], 3.0 if busy else 2.0
    lines.append(
        f"[{load}] gBaS learned Beta 64 x 4096 <= {bound:g}x torch.sort: {ratio:.2f}x "
        f"({_verdict(ratio <= bound)})"
    )
    if not busy:
        for name in FIXED_PRIORS:
            ratios = [row["ours / torch.sort"] for row in fixed if row["case"] == name]
            # Flat within 10% (timing noise) or falling, at every step.
            rises = [later > 1.1 * earlier for earlier, later in itertools.pairwise(ratios)]
            lines.append(
                f"[{load}] ratio to torch.sort from 1e4 to 1e7 flat or falling, {name}: "
                + " -> ".join(f"{r:.2f}" for r in ratios)
                + (" (rises: MISSED)" if any(rises) else " (met)")
            )
        ours = next(row for row in memory if row["approach"] == "ours")
        total = ours["peak extra + kept / input size"]
        lines.append(
            f"[{load}] peak extra memory <= 12 values per element at N = 1e6, learned Beta, "
            f"workspace kept between calls included: {total:.1f} "
            f"({ours['peak extra / input size']:.1f} + kept "
            f"{ours['kept between calls / input size']:.1f}) ({_verdict(total <= 12)})"
        )
    for cache, bound in (("empty", 10.0 if busy else 5.0), ("warm", 1.0)):
        rows = [row for row in first_call if row["cache"] == cache]
        slowest = max(rows, key=lambda row: row["first loss (s)"])
        lines.append(
            f"[{load}] first loss in a fresh process, {cache} numba cache <= {bound:g} s: "
            f"slowest {slowest['first loss (s)']:.1f} s ({slowest['case']}) "
            f"({_verdict(slowest['first loss (s)'] <= bound)})"
        )
    return lines


def _cpu_seconds() -> tuple[float, float] | None:
    """Busy CPU seconds of the whole machine and of this process with its children (Linux)."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(field) for field in stat.readline().split()[1:9]]
    except OSError:
        return None
    idle = ticks[3] + ticks[4]  # idle and iowait
    machine_busy = (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")
    own = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        own += usage.ru_utime + usage.ru_stime
    return machine_busy, own


def _other_load(before, after, wall: float) -> float | None:
    """Average number of cores that other processes kept busy between two _cpu_seconds()."""
    if before is None or after is None:
        return None
    return max(0.0, (after[0] - before[0]) - (after[1] - before[1])) / wall


def _timed(load: str, sizes) -> dict[str, list[dict]]:
    """The timed sections, every row marked with the machine's load."""
    print(f"[{load}]", flush=True)
    sections = {
        "fixed": _fixed_priors(sizes),
        "generalized": _generalized(),
        "first call": _first_call(),
    }
    for rows in sections.values():
        for row in rows:
            row["load"] = load
    return sections


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--busy",
        type=int,
        default=0,
        metavar="K",
        help="also run the cases with targets while K other processes keep K cores busy",
    )
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    description = machine()
    cpu_before = _cpu_seconds()
    start = time.perf_counter()
    print(
        "batch_shaping_loss benchmark: forward + backward, float32; median of 7 runs after 2 "
        "warm-up runs (5 after 1 at N = 1e7)",
        flush=True,
    )
    quiet = _timed("quiet", SIZES)
    other = _other_load(cpu_before, _cpu_seconds(), time.perf_counter() - start)
    memory = _memory()
    loads = [("quiet", quiet)]
    if args.busy:
        label = f"{args.busy} core{'s' if args.busy > 1 else ''} busy"
        with busy_cores(args.busy):
            loads.append((label, _timed(label, (1_000_000,))))
    on_device = _cuda() if torch.cuda.is_available() else []
    timing_columns = [
        "case",
        "shape",
        "load",
        "ours (ms)",
        "torch.sort (ms)",
        "np.argsort (ms)",
        "original (ms)",
        "ours / torch.sort",
        "original / torch.sort",
        "runs",
        "target",
    ]
    sections = {
        "fixed-parameter BaS, one group of N values": (
            [row for _, rows in loads for row in rows["fixed"]],
            [*timing_columns, "betainc alone (ms)"],
        ),
        "generalized and per-group": (
            [row for _, rows in loads for row in rows["generalized"]],
            [*timing_columns, "betainc alone (ms)"],
        ),
        "peak extra memory of forward + backward (fresh process)": (memory, list(memory[0])),
        "first loss in a fresh process": (
            [row for _, rows in loads for row in rows["first call"]],
            list(quiet["first call"][0]),
        ),
    }
    if on_device:
        sections["fixed-parameter BaS on the GPU"] = (on_device, timing_columns)
    if other is not None:
        description["cores busy with other processes during the quiet run (mean)"] = f"{other:.2f}"
    print()
    print(", ".join(f"{key} {value}" for key, value in description.items()))
    if other is not None and other > 0.1:
        print(
            "note: other processes kept the machine busy during the quiet run; torch's "
            "multi-threaded operations then slow down far more than one torch.sort, so ratios "
            "to it may be worse than on an idle machine"
        )
    for title, (rows, columns) in sections.items():
        print(f"\n## loss: {title}\n")
        print(format_table(rows, columns))
    targets = []
    for load, rows in loads:
        targets += _check_targets(
            rows["fixed"], rows["generalized"], memory, rows["first call"], load
        )
    print("\n## targets\n")
    print("\n".join(targets))
    paths = _plot(quiet["fixed"], description)
    path = write_results(
        "loss",
        [],
        other_processes_cores=other,
        sections={title: rows for title, (rows, _) in sections.items()},
        targets=targets,
        seconds=time.perf_counter() - start,
    )
    print(f"\nwrote {path}, {', '.join(map(str, paths))} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
