"""Fixtures shared by the load generator's client tests."""

from __future__ import annotations

import pytest

from ._local import Certs, make_certs


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A throw-away CA and a `localhost` server certificate signed by it."""
    return make_certs(tmp_path_factory.mktemp("certs"))
