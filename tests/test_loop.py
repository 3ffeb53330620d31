"""durable.loop: uvloop when installed (the `uvloop` extra), asyncio's loop otherwise."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from durable import loop

HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_asyncio_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(loop.ENV, "asyncio")
    assert loop.loop_factory() is None
    assert loop.run(_loop_module()).startswith("asyncio")


def test_auto_uses_uvloop_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(loop.ENV, raising=False)
    expected = "uvloop" if HAVE_UVLOOP else "asyncio"
    assert loop.run(_loop_module()).startswith(expected)


def test_uvloop_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(loop.ENV, "uvloop")
    if HAVE_UVLOOP:
        assert loop.run(_loop_module()).startswith("uvloop")
    else:
        with pytest.raises(RuntimeError, match="not installed"):
            loop.loop_factory()


def test_bad_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(loop.ENV, "trio")
    with pytest.raises(ValueError, match="DURABLE_LOOP"):
        loop.loop_factory()
