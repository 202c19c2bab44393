"""The API tests' seeded registry (synth data, trained citizen model, clients),
shared with the security tests, and ``mdm serve`` on it for the console."""

from collections.abc import Iterator

import pytest

from tests.api.conftest import Registry, api_synth, registry, trained_rules
from tests.servers import running_server

__all__ = ["api_synth", "console_url", "registry", "trained_rules"]


@pytest.fixture(scope="module")
def console_url(registry: Registry) -> Iterator[str]:
    """``mdm serve`` on the registry's database (the console binds its own engine)."""
    env = {"MDM_MATCHING_RULES_DIR": str(registry.rules_dir)}
    with running_server(registry.url, env=env) as base:
        yield base
