"""Imported by the fork server of the rank pools (``conftest.py``), before any rank is forked.

It loads the CPU kernels the cases use (numba's compiled code, cached on disk, takes a second
or more to load in each process), so that every rank forked afterwards has them: the ranks'
first loss then costs what any other does. One thread: nothing is running when the ranks fork.
"""

import torch

from batchshaping import batch_shaping_loss
from batchshaping.distributions import Beta

torch.set_num_threads(1)
for dtype in (torch.float32, torch.float64):
    x = torch.linspace(0.05, 0.95, 24, dtype=dtype).reshape(8, 3).requires_grad_()
    concentration = torch.linspace(0.5, 2.0, 3, dtype=dtype).requires_grad_()
    for options in ({}, {"ties": True}, {"mask": x.detach() > 0.1}):
        batch_shaping_loss(x, Beta(concentration, 2.0), dim=0, **options).backward()
        batch_shaping_loss(x, Beta(2.0, 6.0), **options).backward()
    batch_shaping_loss(x, Beta(2.0, 6.0), dim=0, logits=True).backward()
