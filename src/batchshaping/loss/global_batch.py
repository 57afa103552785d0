r"""The global batch across ``torch.distributed`` ranks: ``batch_shaping_loss(..., sync=True)``.

Every rank of the process group holds a slice of the batch, ``values`` (*groups, N_r) with the
samples laid out last. :func:`gather` joins the slices into (*groups, N_0 + ... + N_{W-1}) on
every rank, in rank order, so that every rank computes the loss of the global batch:

1. one collective of metadata (a short int64 vector per rank: whether its arguments passed the
   checks, N_r, whether it has a mask, x's dtype, the group shape, the options, whether x
   requires a gradient): read on the host (on CUDA the one synchronisation, which the sizes of
   the next collective need), it lets every rank raise the same ``ValueError`` when the ranks
   disagree, before any data moves (so a disagreement never hangs a collective);
2. one ``all_gather`` of the values, each rank's padded to max_r N_r, the padding then cut away
   (the sizes are known on the host), so the routes see the concatenated batch as one process
   would; a second one of the mask, as bytes, when some rank has one.

:class:`GatherSamples` is the autograd function of step 2. Its backward returns to each rank the
gradient of the sum of every rank's loss with respect to its own values: the gradients of all
ranks for its slice, summed (a reduce-scatter on NCCL, an all-to-all and a sum elsewhere, as
:mod:`torch.distributed.nn` does). Every rank computes the same loss, so rank r's values receive
W times their part of the gradient of the one loss, and DDP, which averages the gradients of the
parameters over the W ranks, gives them the gradient one process would compute on the whole
batch.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import torch
import torch.distributed as dist
from torch import Tensor
from torch.autograd.function import once_differentiable

from batchshaping._runtime.tracing import tracing

__all__ = ["GatherSamples", "gather", "process_group_of", "shared_failure"]

# The metadata vector: a fixed layout, so that every rank sends the same number of int64s.
(_FAILED, _SAMPLES, _HAS_MASK, _DTYPE, _OPTIONS, _GRADIENT) = range(6)
(_GROUP_NDIM, _GROUP_NUMEL, _GROUP_HASH) = range(6, 9)
_DIMS = 9  # where the first group dimensions start
MAX_SHOWN_DIMS = 16  # group dimensions shown in a message (all of them are compared, by hash)
METADATA_LENGTH = _DIMS + MAX_SHOWN_DIMS

_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_REDUCTIONS = ("mean", "sum", "none")

# The collectives under their current names (torch 2.13 renamed the *_tensor forms).
_all_gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
_reduce_scatter = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor


def process_group_of(process_group: dist.ProcessGroup | None) -> dist.ProcessGroup | None:
    """The group to gather over (``None``: the whole world), or ``None`` for a group of one rank.

    Raises:
        RuntimeError: when no process group is initialised, saying how to initialise one.
        ValueError: when this rank is not a member of ``process_group``.
        NotImplementedError: under ``torch.compile`` or a ``torch.func`` transform.
    """
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            "sync=True gathers the batch across torch.distributed ranks, but no process group "
            "is initialised: call torch.distributed.init_process_group('nccl') (or 'gloo' on "
            "the CPU) in every process first, for instance in a script launched with "
            "`torchrun --nproc_per_node N script.py`, which sets the environment it reads; or "
            "pass sync=False"
        )
    if tracing():
        raise NotImplementedError(
            "sync=True does not run under torch.compile or a torch.func transform"
        )
    group = dist.group.WORLD if process_group is None else process_group
    size = dist.get_world_size(group)
    if size < 1:
        raise ValueError(f"process_group: rank {dist.get_rank()} is not a member of it")
    return None if size == 1 else group


def _device_of(x: object, group: dist.ProcessGroup) -> torch.device:
    """Where the metadata goes: with x, or where the backend wants it when x is not a tensor."""
    if isinstance(x, Tensor):
        return x.device
    if "nccl" in str(dist.get_backend(group)) and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _exchange(metadata: list[int], device: torch.device, group: dist.ProcessGroup) -> list[list]:
    """Every rank's metadata vector, in rank order (one collective; read on the host)."""
    local = torch.tensor(metadata, dtype=torch.int64, device=device)
    return _all_gather_stacked(local, group).tolist()


def _all_gather_stacked(tensor: Tensor, group: dist.ProcessGroup) -> Tensor:
    """Every rank's ``tensor`` (all of one shape), stacked: (W, *shape)."""
    # Flat buffers: gloo takes the output only as the inputs concatenated.
    everyone = tensor.new_empty(dist.get_world_size(group) * tensor.numel())
    _all_gather(everyone, tensor.contiguous().view(-1), group=group)
    return everyone.view(-1, *tensor.shape)


@contextlib.contextmanager
def shared_failure(group: dist.ProcessGroup | None, x: object) -> Iterator[None]:
    """Run a rank's own checks; if one raises, tell the other ranks before raising it.

    The other ranks wait in :func:`gather`'s metadata collective: this rank takes part in it with
    its failure flag set, so that they raise a ``ValueError`` instead of waiting for data that
    will never come. Nothing happens without a group.
    """
    if group is None:
        yield
        return
    try:
        yield
    except Exception:
        failed = [0] * METADATA_LENGTH
        failed[_FAILED] = 1
        _exchange(failed, _device_of(x, group), group)
        raise


def _metadata(
    values: Tensor, mask: Tensor | None, dtype: torch.dtype, options: tuple[bool, bool, str]
) -> list[int]:
    ties, logits, reduction = options
    group_shape = tuple(values.shape[:-1])
    metadata = [0] * METADATA_LENGTH
    metadata[_SAMPLES] = values.shape[-1]
    metadata[_HAS_MASK] = int(mask is not None)
    metadata[_DTYPE] = _DTYPES.index(dtype) if dtype in _DTYPES else len(_DTYPES)
    metadata[_OPTIONS] = int(ties) + 2 * int(logits) + 4 * _REDUCTIONS.index(reduction)
    # A rank without a backward would leave the others waiting in theirs.
    metadata[_GRADIENT] = int(values.requires_grad)
    metadata[_GROUP_NDIM] = len(group_shape)
    metadata[_GROUP_NUMEL] = math.prod(group_shape)
    # hash() of a tuple of ints is the same in every process (only str and bytes are salted).
    metadata[_GROUP_HASH] = hash(group_shape)
    shown = group_shape[:MAX_SHOWN_DIMS]
    metadata[_DIMS : _DIMS + len(shown)] = shown
    return metadata


def _shape_of(row: Sequence[int]) -> str:
    ndim = row[_GROUP_NDIM]
    dims = [str(d) for d in row[_DIMS : _DIMS + min(ndim, MAX_SHOWN_DIMS)]]
    if ndim > MAX_SHOWN_DIMS:
        dims.append("...")
    return "(" + ", ".join(dims) + ("," if ndim == 1 else "") + ")"


def _dtype_of(row: Sequence[int]) -> str:
    code = row[_DTYPE]
    return str(_DTYPES[code]) if code < len(_DTYPES) else "another floating dtype"


def _options_of(row: Sequence[int]) -> str:
    code = row[_OPTIONS]
    return f"ties={bool(code & 1)}, logits={bool(code & 2)}, reduction={_REDUCTIONS[code >> 2]!r}"


def _ranks(ranks: list[int]) -> str:
    return f"rank {ranks[0]}" if len(ranks) == 1 else f"ranks {', '.join(map(str, ranks))}"


def _disagreement(rows: list[list[int]]) -> str | None:
    """What the ranks disagree on, each value with the ranks that hold it; None if nothing."""
    described = (
        # (what, the key compared, the text shown)
        ("the number of groups", lambda row: row[_GROUP_NUMEL], lambda row: row[_GROUP_NUMEL]),
        (
            "the group shape (x's shape without its sample dimensions)",
            lambda row: (row[_GROUP_NDIM], row[_GROUP_HASH]),
            _shape_of,
        ),
        ("x's dtype", lambda row: row[_DTYPE], _dtype_of),
        ("the options", lambda row: row[_OPTIONS], _options_of),
        (
            "whether x requires a gradient",
            lambda row: row[_GRADIENT],
            lambda row: str(bool(row[_GRADIENT])),
        ),
    )
    parts = []
    for what, key, show in described:
        holders: dict[object, list[int]] = {}
        for rank, row in enumerate(rows):
            holders.setdefault(key(row), []).append(rank)
        if len(holders) > 1:
            found = "; ".join(
                f"{show(rows[ranks[0]])} on {_ranks(ranks)}" for ranks in holders.values()
            )
            parts.append(f"{what}: {found}")
    return "\n".join(parts) if parts else None


def gather(
    values: Tensor,
    mask: Tensor | None,
    group: dist.ProcessGroup,
    dtype: torch.dtype,
    options: tuple[bool, bool, str],
) -> tuple[Tensor, Tensor | None]:
    """The global batch: every rank's ``values`` (*groups, N_r) and ``mask``, joined last.

    Args:
        values: this rank's values, samples last, in the dtype the loss computes in.
        mask: this rank's mask laid out like ``values``, or ``None``.
        group: the process group (from :func:`process_group_of`).
        dtype: x's dtype, which the ranks must share.
        options: ``(ties, logits, reduction)``, which the ranks must share.

    Returns:
        ``(values, mask)`` of shape (*groups, sum_r N_r), rank 0's samples first; the mask is
        ``None`` when no rank has one. Differentiable in ``values`` (see :class:`GatherSamples`).

    Raises:
        ValueError: on every rank, when some rank's own checks failed, or when the ranks
            disagree on the group shape, the number of groups, x's dtype, the options, or
            whether x requires a gradient.
    """
    rows = _exchange(_metadata(values, mask, dtype, options), values.device, group)
    failed = [rank for rank, row in enumerate(rows) if row[_FAILED]]
    if failed:
        raise ValueError(
            f"sync=True: {_ranks(failed)} rejected {'its' if len(failed) == 1 else 'their'} "
            f"arguments (the error raised there says why), so no rank computes the loss"
        )
    disagreement = _disagreement(rows)
    if disagreement is not None:
        raise ValueError(f"sync=True: the ranks disagree on\n{disagreement}")
    sizes = [row[_SAMPLES] for row in rows]
    if max(sizes) == 0:
        return values, mask  # nothing to gather: the loss raises on every rank
    joined = GatherSamples.apply(values, sizes, group)
    if not any(row[_HAS_MASK] for row in rows):
        return joined, None
    own = torch.ones_like(values, dtype=torch.bool) if mask is None else mask
    # As bytes: NCCL has no bool type.
    return joined, _gather_padded(own.to(torch.uint8), sizes, group).bool()


def _gather_padded(tensor: Tensor, sizes: list[int], group: dist.ProcessGroup) -> Tensor:
    """Every rank's ``tensor`` (*groups, N_r), padded to max N_r, gathered and cut, joined last."""
    everyone = _all_gather_stacked(
        torch.nn.functional.pad(tensor, (0, max(sizes) - tensor.shape[-1])), group
    )
    return torch.cat([everyone[rank, ..., :size] for rank, size in enumerate(sizes)], dim=-1)


class GatherSamples(torch.autograd.Function):
    r"""Every rank's values (*groups, N_r) joined last, in rank order; gradients back to each.

    Forward: an ``all_gather`` of the values padded to max N_r, the padding cut away. Backward:
    rank r receives the sum over the ranks s of the gradient of rank s's loss with respect to
    rank r's values,

    .. math::
        \frac{\partial}{\partial v_r} \sum_s \mathcal{L}_s,

    exchanged by a reduce-scatter (NCCL) or an all-to-all followed by a sum (other backends; on
    gloo the all-to-all moves half the bytes of its reduce-scatter). Every rank must run the
    backward, as under DDP. First derivatives only.

    Inputs: ``values`` (*groups, N_r), ``sizes`` every rank's N_r (ints), ``group``.
    """

    @staticmethod
    def forward(ctx, values: Tensor, sizes: list[int], group: dist.ProcessGroup) -> Tensor:
        ctx.sizes, ctx.group = sizes, group
        ctx.rank = dist.get_rank(group)
        return _gather_padded(values.detach(), sizes, group)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        sizes, group, rank = ctx.sizes, ctx.group, ctx.rank
        width = max(sizes)
        per_rank = grad.new_zeros((len(sizes), *grad.shape[:-1], width))
        for source, part in enumerate(grad.split(sizes, dim=-1)):
            per_rank[source, ..., : sizes[source]] = part
        if grad.device.type == "cuda" and "nccl" in str(dist.get_backend(group)):
            own = per_rank.new_empty(per_rank.shape[1:])
            _reduce_scatter(own.view(-1), per_rank.view(-1), group=group)
        else:
            received = torch.empty_like(per_rank)
            dist.all_to_all_single(received.view(-1), per_rank.view(-1), group=group)
            own = received.sum(0)
        return own[..., : sizes[rank]], None, None
