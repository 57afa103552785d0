"""Named, thread-local choices among implementations: ``with choice("name"): ...``.

A :class:`Choice` holds the names of the implementations of one thing (the kernels of
``betainc``, the routes of the loss) and which of them the current thread has asked for.
Outside any ``with`` block the choice is automatic (``current()`` is ``None``); blocks nest, the
innermost wins, and each thread has its own stack.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any


class Choice:
    """The thread-local choice of one implementation among named ones.

    Args:
        what: what is chosen, for messages (``"kernel"``, ``"route"``).
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self._available: dict[str, Callable[[], bool]] = {}
        self._local = threading.local()

    def add(self, name: str, available: Callable[[], bool] = lambda: True) -> None:
        """Declare ``name``; ``available()`` says whether it can run in this process."""
        if name in self._available:
            raise ValueError(f"{self.what} {name!r} is already registered")
        self._available[name] = available

    def names(self) -> tuple[str, ...]:
        """Every declared name, whether or not it can run here."""
        return tuple(self._available)

    def available(self) -> tuple[str, ...]:
        """The names that can run in this process, in the order they were declared."""
        return tuple(name for name, check in self._available.items() if check())

    def current(self) -> str | None:
        """The innermost name chosen by this thread, or ``None`` for the automatic choice."""
        stack = getattr(self._local, "stack", None)
        return stack[-1][0] if stack else None

    def options(self) -> dict[str, Any]:
        """The options given with the innermost choice (empty for the automatic choice)."""
        stack = getattr(self._local, "stack", None)
        return dict(stack[-1][1]) if stack else {}

    @contextlib.contextmanager
    def use(self, name: str, **options: Any) -> Iterator[None]:
        """Use ``name``, with ``options`` for it, in this thread inside the block."""
        if name not in self._available:
            raise ValueError(
                f"unknown {self.what} {name!r}; the {self.what}s are {', '.join(self.names())}"
            )
        if not self._available[name]():
            raise ValueError(
                f"{self.what} {name!r} cannot run in this process; available: "
                f"{', '.join(self.available())}"
            )
        stack = self._local.__dict__.setdefault("stack", [])
        stack.append((name, options))
        try:
            yield
        finally:
            stack.pop()
