"""The object every command receives: effective config, order store and Planet client, built on first use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from flowzero.config import Config
    from flowzero.planet.client import PlanetClient
    from flowzero.storage import OrderStore


@dataclass
class AppContext:
    config_path: str | None = None
    api_key: str | None = field(default=None, repr=False)
    database_path: str | None = None
    debug: bool = False
    quiet: bool = False
    _config: Config | None = field(default=None, repr=False)
    _store: Optional[OrderStore] = field(default=None, repr=False)
    _planet: Optional[PlanetClient] = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        if self._config is None:
            from flowzero.config import load_config  # noqa: PLC0415 (start-up: --help does not read the config)

            self._config = load_config(
                self.config_path,
                overrides={"api_key": self.api_key, "database_path": self.database_path},
            )
        return self._config

    def store(self) -> OrderStore:
        """The order store chosen by ``storage.backend`` (opened once, migrations applied)."""
        if self._store is None:
            from flowzero.storage.opening import open_store  # noqa: PLC0415 (start-up, as config)

            self._store = open_store(self.config)
        return self._store

    def planet(self) -> PlanetClient:
        """One Planet client per process (connection pooling); needs an API key."""
        if self._planet is None:
            from flowzero.planet.client import PlanetClient

            self._planet = PlanetClient.from_config(self.config)
        return self._planet
