"""Shared test setup: every test runs with a private HOME and no real secrets or config in the environment.

Fixtures shared across test files live in tests/fixtures/<area>.py and are listed in ``pytest_plugins``.
"""

from __future__ import annotations

import pytest

pytest_plugins: list[str] = ["tests.fixtures.s3", "tests.fixtures.fileserver", "tests.fixtures.storage",
                             "tests.fixtures.sandbox", "tests.fixtures.reliability",
                             "tests.fixtures.postgres", "tests.fixtures.stac"]


# Tests talk to the sandbox, which enforces Planet's rates only when its planet_limits switch is on: flowzero is
# paced far above them here (the pacing code still runs), except in the tests of pacing, which set their own.
UNPACED = {f"FLOWZERO_PLANET_RATE_LIMITS_{name.upper()}": "1000" for name in (
    "orders_create", "orders_get", "orders_list", "orders_cancel", "downloads", "data", "basemaps", "destinations")}


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    for name, value in UNPACED.items():
        monkeypatch.setenv(name, value)
    for name in ("PL_API_KEY", "FLOWZERO_CONFIG", "FLOWZERO_DATABASE_PATH", "FLOWZERO_DATABASE_URL",
                 "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "FLOWZERO_LOAD_PLUGINS",
                 "FLOWZERO_STORAGE_BACKEND", "FLOWZERO_STORAGE_URL", "PGPASSWORD", "AWS_PROFILE",
                 "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CA_BUNDLE", "AWS_ROLE_ARN",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_EC2_METADATA_SERVICE_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    # The credential chain never reaches for a real instance-metadata address (tests that need it enable it).
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
