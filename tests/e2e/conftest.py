"""End-to-end tests use the same local stack as the integration tests."""
from tests.integration.conftest import local_stack  # noqa: F401  (a pytest fixture)
