"""The one numba decorator of the package, and a cache that notices every kernel source.

Importing this module imports numba; the modules that use it are loaded on first use, so that
``import batchshaping`` does not load numba.

- ``cache=True``: compiled code is kept on disk (beside the package, or in ``NUMBA_CACHE_DIR``)
  and reused by later processes, which load it without numba's registries
  (:class:`_PackageFunctionCache`);
- ``nogil=True``: kernels release the GIL and run in parallel on the threads of
  :mod:`batchshaping._runtime.threads` (plain threads cost a fraction of the compile time of
  numba's parallel loops on first use);
- ``error_model="numpy"``: no Python exceptions on division by zero (the kernels guard their
  divisions), so the compiled loops have no exception checks.

The decorators: ``jit`` for the kernels that Python calls; ``c_entry`` for a kernel's C entry
point, run on several threads by :func:`batchshaping._runtime.threads.run_copies`; ``callee``
for the helpers that only compiled code calls (no wrappers to call them from Python are
compiled, no machine code of their own either, and they are not cached on their own: the kernels
that call them are, with them inside); ``inlined`` for a function numba inlines into its one caller.

Python's cyclic garbage collector is paused while numba compiles one of the package's functions
(:func:`batchshaping._runtime.collector.paused_garbage_collection`): numba's compiler makes
millions of short-lived objects, and the collections they set off, each walking every object of
the process (torch's among them), took 0.7 to 0.8 s of a first learned-Beta loss of 4.5 s with an
empty cache.

numba keys a cached function on its own source file only. A kernel compiled together with the
helpers it calls in other files (``special/_scalar.py`` for every betainc kernel) would then be
loaded stale after a change to a helper alone: wrong numbers from an upgraded package. The cache
of this package's functions is keyed on the contents of every source file of the package's
kernels instead (:func:`kernel_sources_stamp`).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numba
from numba.core import caching, codegen, sigutils
from numba.core.ccallback import CFunc
from numba.core.compiler import CompilerBase, DefaultPassBuilder
from numba.core.compiler_machinery import FunctionPass, register_pass
from numba.core.runtime import nrt
from numba.core.typed_passes import NopythonTypeInference

from batchshaping._runtime.collector import paused_garbage_collection

_PACKAGE = Path(__file__).resolve().parent.parent


def kernel_sources() -> list[Path]:
    """The source files whose code numba compiles into the package's kernels."""
    return sorted(
        [
            *(_PACKAGE / "special").glob("*.py"),
            *(_PACKAGE / "loss" / "routes").glob("*.py"),
            *(_PACKAGE / "_runtime").glob("*.py"),
        ]
    )


@functools.cache
def kernel_sources_stamp() -> str:
    """A hash of the contents of every kernel source file (computed once per process)."""
    digest = hashlib.sha256()
    for path in kernel_sources():
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


class _PackageSourcesStamp:
    """A locator of numba's cache for the package's own functions, stamped with every kernel
    source file rather than the function's own file alone."""

    def get_source_stamp(self):
        return ("batchshaping", kernel_sources_stamp())

    @classmethod
    def from_function(cls, py_func, py_file):
        try:
            Path(py_file).resolve().relative_to(_PACKAGE)
        except ValueError:
            return None  # another library's function: numba's own locators
        return super().from_function(py_func, py_file)


class _UserProvidedLocator(_PackageSourcesStamp, caching.UserProvidedCacheLocator):
    pass


class _InTreeLocator(_PackageSourcesStamp, caching.InTreeCacheLocator):
    pass


_locators = caching.CompileResultCacheImpl._locator_classes
if _UserProvidedLocator not in _locators:
    _locators[:0] = [_UserProvidedLocator, _InTreeLocator]

_OPTIONS = {"cache": True, "nogil": True, "error_model": "numpy"}


class _PackageFunctionCache(caching.FunctionCache):
    """numba's cache of one of the package's functions, whose compiled code it loads without
    loading numba's registries first.

    numba refreshes its target before every load from its cache: it imports and installs the
    typing and lowering registries of everything it can compile (numpy, linear algebra, which
    imports ``scipy.linalg``, typed containers, random generators, ...). A compile needs them
    (numba's compiler refreshes them itself before it compiles), but code loaded from the cache
    needs only numba's runtime and C helpers, whose symbols the compiled code links to. The
    refresh was half of the first loss of a process with a warm cache: 0.5 to 0.65 s against
    0.26 to 0.35 s without it (Beta(2, 6) on 1e5 values and learned Beta on 4096 x 8, ad hoc,
    AMD EPYC, 2026-12-03). numba's helpers are in the LLVM symbol table once its CPU target
    exists; its runtime's are added here. A load that fails this way is tried again numba's way.
    """

    def load_overload(self, sig, target_context):
        try:
            nrt.rtsys.initialize(target_context)  # NRT_* symbols, as numba's refresh adds them
            return self._load_overload(sig, target_context)
        except Exception:
            return super().load_overload(sig, target_context)


def _loads_lightly(cache) -> None:
    """Make ``cache`` (a function's numba cache) a :class:`_PackageFunctionCache`."""
    if type(cache) is caching.FunctionCache:
        cache.__class__ = _PackageFunctionCache


class _PackageDispatcher(type(numba.njit(lambda: None))):
    """numba's dispatcher, with the garbage collector paused while it compiles."""

    def compile(self, sig):
        with paused_garbage_collection():
            return super().compile(sig)


def jit(function):
    """The decorator of the kernels that Python calls (compiled on first call, and cached)."""
    dispatcher = numba.njit(**_OPTIONS)(function)
    dispatcher.__class__ = _PackageDispatcher
    _loads_lightly(dispatcher._cache)
    return dispatcher


class _LinkedOnlyLibrary(codegen.JITCodeLibrary):
    """The code library of a :func:`callee`: linked into its callers' libraries, and optimised
    and made into machine code there only.

    numba optimises every function's library at full strength and makes machine code of it on
    its own, then again inside each caller that links it in (with it inlined); for a helper
    that only compiled code calls, the first round is wasted. Skipping it took about a quarter
    off numba's LLVM time in a first learned-Beta loss with an empty cache (3.7 to 3.8 s down to
    2.8 to 3.1 s, numba's ``llvm_lock`` events, ad hoc runs on a 2.0 GHz Xeon, 2026-12-03). The
    function-level passes numba runs when the code is added still run; the callers' full
    optimisation sees the whole code.

    It replaces private methods of numba's ``JITCodeLibrary`` (the same from numba 0.59 to
    0.68); where a numba lacks them, callees are compiled as numba compiles any function
    (:data:`_LINKED_ONLY`).
    """

    def _optimize_final_module(self):
        pass  # optimised inside each caller

    def _finalize_final_module(self):
        self._finalize_dynamic_globals()
        self._verify_declare_only_symbols()
        self._finalized = True  # not added to the execution engine: no machine code

    def get_pointer_to_function(self, name):
        return 0  # nothing to call: Python cannot call a callee (_CalleeDispatcher)

    @property
    def codegen(self):
        return _EnvlessCodegen(self._codegen)


class _EnvlessCodegen:
    """numba's codegen, for a library without machine code: numba sets the address of a
    function's environment in its compiled module, which a linked-only library does not have.
    (The helpers' environments hold what a dynamic ``raise`` would box; they raise nothing.)"""

    def __init__(self, wrapped):
        self._wrapped = wrapped

    def set_env(self, env_name, env):
        pass

    def __getattr__(self, name):
        return getattr(self._wrapped, name)


@register_pass(mutates_CFG=False, analysis_only=True)
class _LinkedOnlyCode(FunctionPass):
    """Give the function a :class:`_LinkedOnlyLibrary` before numba lowers it."""

    _name = "batchshaping_linked_only_code"

    def __init__(self):
        FunctionPass.__init__(self)

    def run_pass(self, state):
        state.library = _LinkedOnlyLibrary(state.targetctx.codegen(), state.func_id.func_qualname)
        return False


class _CalleeCompiler(CompilerBase):
    """numba's nopython pipeline, with the callee's code linked into its callers only."""

    def define_pipelines(self):
        pipeline = DefaultPassBuilder.define_nopython_pipeline(self.state)
        pipeline.add_pass_after(_LinkedOnlyCode, NopythonTypeInference)
        pipeline.finalize()
        return [pipeline]


_LINKED_ONLY = all(
    hasattr(codegen.JITCodeLibrary, name)
    for name in (
        "_optimize_final_module",
        "_finalize_final_module",
        "_finalize_dynamic_globals",
        "_verify_declare_only_symbols",
    )
)

_compile_callee = numba.njit(
    **{**_OPTIONS, "cache": False},
    no_cpython_wrapper=True,
    no_cfunc_wrapper=True,
    **({"pipeline_class": _CalleeCompiler} if _LINKED_ONLY else {}),
)


class _CalleeDispatcher(_PackageDispatcher):
    """A dispatcher without an entry point from Python: calling it raises instead of jumping
    to code that is not there."""

    def __call__(self, *args, **kwargs):
        raise TypeError(
            f"{self.py_func.__qualname__} is compiled only to be called from other compiled "
            "functions (batchshaping._runtime.jit.callee)"
        )


_C_ENTRY_SIGNATURE = sigutils.normalize_signature(numba.types.void(numba.types.voidptr))


def c_entry(function):
    """The decorator of a kernel's C entry point: ``void entry(void *descriptor)``, compiled at
    once (and cached), for :func:`batchshaping._runtime.threads.run_copies`; its address is
    ``entry.address``."""
    options = {name: value for name, value in _OPTIONS.items() if name != "cache"}
    entry = CFunc(function, _C_ENTRY_SIGNATURE, locals={}, options=options)
    entry.enable_caching()
    _loads_lightly(entry._cache)
    with paused_garbage_collection():
        entry.compile()
    return entry


def inlined(function):
    """The decorator of a function numba inlines into its one caller (as the body of a kernel
    into its C entry point: compiled apart, it would be optimised twice, once alone and once
    linked into the caller)."""
    return numba.njit(**{**_OPTIONS, "cache": False}, inline="always")(function)


def callee(function):
    """The decorator of functions called only from other compiled functions.

    numba builds a CPython wrapper (and a C wrapper) for every function it compiles, so that
    Python can call it; nobody calls these helpers from Python, and skipping their wrappers
    takes about a sixth off the compile time of a first loss with an empty cache. Their code is
    optimised and made into machine code only inside their callers (:class:`_LinkedOnlyLibrary`).
    Calling one from Python raises TypeError.
    """
    dispatcher = _compile_callee(function)
    dispatcher.__class__ = _CalleeDispatcher
    return dispatcher
