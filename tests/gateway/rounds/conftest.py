"""The running app of the resident tests (site file with rounds, users, grid) serves the rounds
routes too."""

from tests.gateway.residents.conftest import resident_app

__all__ = ["resident_app"]
