"""The upgrade conformance suite (continue_run, fork_run, cleanup claims) on both stores."""

from __future__ import annotations

from durable.testing.conformance_upgrades import UpgradeConformance

from . import test_conformance as base


class TestMemoryStoreUpgrades(UpgradeConformance):
    store = base.TestMemoryStore.store


class TestPostgresStoreUpgrades(UpgradeConformance):
    store = base.TestPostgresStore.store
