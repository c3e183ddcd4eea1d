"""The in-memory store now ships beside the protocol (``reconciler.store.memory``); this name
stays so the tests that import it keep working."""

from reconciler.store.memory import MemoryStore

__all__ = ["MemoryStore"]
