"""A gated network trained with DistributedDataParallel, Batch-Shaping on the global batch.

    torchrun --standalone --nproc_per_node 2 examples/distributed.py [--steps 40] [--batch 16]

Each of the W processes (gloo, on the CPU) draws its own batch of synthetic 8x8 images of 4
classes, rank r taking ``batch + 4 r`` of them (uneven on purpose). The model is a
``GatedResNet`` of two gated blocks (8 and 16 gates); the loss is the cross-entropy, plus
Batch-Shaping of every gate's probabilities towards Beta(0.6, 0.4) with ``sync=True`` (each gate's
distribution over the global batch: what one process holding the whole batch would shape), plus
the L0 penalty. DDP averages the gradients. After training, rank 0 measures what the loss's
collectives move in one step, forward and backward, from the kernel's counters of the process's
TCP sockets, and prints it beside the count of what the gather sends.

    python examples/distributed.py --alternatives [--ranks 1000] [--per-rank 256]

(one process, no torch.distributed) measures, at the scale of ``ranks`` processes holding
``per-rank`` values per group each, how far two losses without communication are from the loss
of the global batch: each rank's own values alone, and ranked among an ``ECDFMemory`` of its
earlier steps.
"""

from __future__ import annotations

import argparse
import gc
import os
import socket
import struct

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from batchshaping import BatchShapingLoss, ECDFMemory, batch_shaping_loss
from batchshaping.distributions import Beta
from batchshaping.gates import GatedResNet, l0_penalty
from batchshaping.loss.global_batch import METADATA_LENGTH

CLASSES = 4
PRIOR = (0.6, 0.4)  # the paper's Beta prior for gates: mostly off or on, a few in between


def images(generator: torch.Generator, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` noisy 8x8 images of 4 fixed patterns, and their labels."""
    patterns = torch.Generator().manual_seed(0)
    templates = (torch.rand(CLASSES, 1, 8, 8, generator=patterns) > 0.5).float()
    labels = torch.randint(CLASSES, (count,), generator=generator)
    noise = 0.6 * torch.randn(count, 1, 8, 8, generator=generator)
    return templates[labels] + noise, labels


def tcp_bytes_received() -> int | None:
    """Bytes received so far by this process's TCP sockets (Linux's tcp_info), or None."""
    total, found = 0, False
    try:
        descriptors = os.listdir("/proc/self/fd")
    except OSError:
        return None
    for name in descriptors:
        try:
            if not os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                continue
            duplicate = socket.socket(fileno=os.dup(int(name)))
        except OSError:
            continue
        try:
            info = duplicate.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 136)
            total += struct.unpack_from("Q", info, 128)[0]  # tcpi_bytes_received
            found = True
        except OSError:
            pass  # not a TCP socket
        finally:
            duplicate.close()
    return total if found else None


def train(steps: int, batch: int) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)  # the same initial model everywhere (DDP also broadcasts rank 0's)
    model = DistributedDataParallel(GatedResNet(widths=(8, 16), num_classes=CLASSES, gate_hidden=8))
    shaping = BatchShapingLoss(Beta(*PRIOR), dim=0, sync=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    data = torch.Generator().manual_seed(1 + rank)  # each rank its own images
    size = batch + 4 * rank
    for step in range(steps):
        inputs, labels = images(data, size)
        cross_entropy = F.cross_entropy(model(inputs), labels)
        gates = torch.cat(model.module.probabilities(), dim=1)  # (size, 24): 24 groups
        bas = shaping(gates)
        l0 = l0_penalty(model.module.on_probabilities())
        loss = cross_entropy + 1.0 * bas + 0.1 * l0
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if rank == 0 and (step % 10 == 0 or step == steps - 1):
            print(
                f"step {step:3d}  cross-entropy {cross_entropy.item():.3f}  "
                f"batch-shaping (global batch) {bas.item():.4f}  L0 {l0.item():.3f}",
                flush=True,
            )
    # Every rank computed the loss of the same global batch.
    everyone = [torch.zeros(()) for _ in range(world)]
    dist.all_gather(everyone, bas.detach())
    if rank == 0:
        same = all(torch.equal(value, everyone[0]) for value in everyone)
        print(f"the {world} ranks' batch-shaping losses are identical: {same}")
    measure(shaping, gates.detach(), rank, world, [batch + 4 * r for r in range(world)])
    # Tear down together: DDP's reducer (which holds the group, in reference cycles that only
    # the garbage collector frees) released now rather than during the interpreter's shutdown,
    # every rank past its last collective, then the group destroyed on every rank.
    del model, optimizer
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()


def measure(shaping, gates, rank: int, world: int, sizes: list[int]) -> None:
    """Bytes received by this rank in one loss's forward and backward, measured and counted."""
    groups = gates.shape[1]
    leaf = gates.clone().requires_grad_()
    dist.barrier()
    start = tcp_bytes_received()
    loss = shaping(leaf)
    after_forward = tcp_bytes_received()
    loss.backward()
    after_backward = tcp_bytes_received()
    if rank != 0:
        return
    # The gather: W - 1 other ranks' metadata (int64) and values (float32, padded to max N_r).
    metadata = (world - 1) * METADATA_LENGTH * 8
    values = (world - 1) * max(sizes) * 4
    print(f"one step, {groups} groups, per-rank batch sizes {sizes}:")
    if start is None:
        print("  (TCP counters unavailable here: nothing measured)")
        return
    forward, backward = metadata + values * groups, values * groups
    print(
        f"  forward:  {after_forward - start} bytes received = metadata {metadata} + values "
        f"{values} per group x {groups} ({forward}) + {after_forward - start - forward} of gloo's"
    )
    print(
        f"  backward: {after_backward - after_forward} bytes received = gradients {values} per "
        f"group x {groups} ({backward}) + {after_backward - after_forward - backward} of gloo's"
    )


def alternatives(ranks: int, per_rank: int, groups: int = 16, steps: int = 8) -> None:
    """The loss and gradient of one rank's values without communication, against sync=True's.

    Values drawn from Beta(0.8, 0.5), shaped towards the prior: what sync=True computes is the
    loss of the ``ranks * per_rank`` values of every group (the figure every rank would get) and
    the gradient of one rank's values (W times its slice). Without communication a rank has its
    own ``per_rank`` values, alone or ranked among a memory of its earlier steps (from the same
    distribution: a network whose gates do not drift).
    """
    torch.manual_seed(0)
    prior, source = Beta(*PRIOR), Beta(0.8, 0.5)
    total = ranks * per_rank
    memories = {size: ECDFMemory(size) for size in (per_rank * 4, per_rank * 16, per_rank * 64)}
    for _ in range(64):  # fill the memories with earlier steps of this rank
        earlier = source.sample((per_rank, groups)).double()
        for memory in memories.values():
            batch_shaping_loss(earlier, prior, dim=0, memory=memory)

    def loss_and_gradient(values, **options):
        values = values.clone().requires_grad_()
        loss = batch_shaping_loss(values, prior, dim=0, **options)
        (gradient,) = torch.autograd.grad(loss, values)
        return loss.item(), gradient

    names = ["own values alone"] + [f"with an ECDFMemory({size})" for size in memories]
    errors = {name: ([], []) for name in names}
    for _ in range(steps):
        everyone = source.sample((total, groups)).double()
        mine = everyone[:per_rank]
        global_loss, global_gradient = loss_and_gradient(everyone)
        reference = ranks * global_gradient[:per_rank]  # what sync=True gives this rank
        candidates = [loss_and_gradient(mine)]
        candidates += [loss_and_gradient(mine, memory=memory) for memory in memories.values()]
        for name, (loss, gradient) in zip(names, candidates, strict=True):
            errors[name][0].append(abs(loss - global_loss) / global_loss)
            errors[name][1].append(float((gradient - reference).norm() / reference.norm()))
    print(
        f"{ranks} ranks x {per_rank} values per group ({total} per group), {groups} groups, "
        f"values from Beta(0.8, 0.5), prior Beta{PRIOR}; mean over {steps} steps of the relative "
        f"error against sync=True:"
    )
    for name, (loss_errors, gradient_errors) in errors.items():
        print(
            f"  {name:28s} loss {sum(loss_errors) / steps:.2%}  "
            f"gradient {sum(gradient_errors) / steps:.2%}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=16, help="rank r trains on batch + 4 r")
    parser.add_argument("--alternatives", action="store_true", help="one process, no training")
    parser.add_argument("--ranks", type=int, default=1000)
    parser.add_argument("--per-rank", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.alternatives:
        alternatives(args.ranks, args.per_rank)
    else:
        train(args.steps, args.batch)


if __name__ == "__main__":
    main()
