"""Waiting in tests for something a background process does: one polling loop for every test file."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(cond: Callable[[], Any], timeout: float, what: str, detail: Callable[[], str] | None = None) -> Any:
    """``cond()``'s first truthy value, asked every 0.1 s; after ``timeout`` seconds an AssertionError that
    names ``what`` and adds ``detail()`` (what the caller can say of the state: a status, a log's tail)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{detail() if detail else ''}")
