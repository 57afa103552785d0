"""What a kernel's C entry point needs in numba: arrays from addresses, and a shared counter.

A C entry point (a numba ``cfunc`` taking one pointer, run by
:func:`batchshaping._runtime.threads.run_copies` on several threads at once) receives its
arrays as a *descriptor*: an int64 array of addresses, sizes and counters, written by the host.
``numba.carray(pointer(address, dtype), shape)`` views an array again; :func:`take` hands out
the pieces of the work, one to each thread that asks, each exactly once.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic


@intrinsic
def pointer(typingctx, address, dtype):
    """The int64 ``address`` as a pointer to values of ``dtype`` (a numpy scalar type), for
    ``numba.carray``."""
    pointer_type = types.CPointer(dtype.dtype)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(pointer_type))

    return pointer_type(address, dtype), codegen


@intrinsic
def take(typingctx, base, index):
    """Add 1 to the int64 at ``base[index]`` (``base`` a void pointer) atomically, and return
    the value it had: of the threads that call it at once, each gets a different number."""

    def codegen(context, builder, signature, args):
        counters = builder.bitcast(args[0], ir.IntType(64).as_pointer())
        counter = builder.gep(counters, [args[1]])
        return builder.atomic_rmw("add", counter, ir.Constant(ir.IntType(64), 1), "monotonic")

    return types.int64(types.voidptr, types.int64), codegen
