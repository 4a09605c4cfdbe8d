"""Process configuration read from the environment.

Every setting has one name, one default and one place where it is read, so that the
CLI, the server and the tests agree on where data and keys live.

| variable | default | meaning |
| --- | --- | --- |
| ``ONECARD_HOME`` | ``./.onecard`` | folder for the embedded database, key store, queues and reports |
| ``ONECARD_DATABASE_URL`` | unset | an external PostgreSQL (``postgresql://...``); unset means embedded |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Config:
    """Where the engine keeps its state.

    Attributes
    ----------
    home : Path
        Folder for the embedded PostgreSQL data directory (``home/pgdata``), the soft key
        store and local queues. Created on first use.
    database_url : str | None
        An external PostgreSQL; ``None`` selects the embedded server under ``home``.
    """

    home: Path
    database_url: str | None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Config":
        """Build the configuration from ``environ`` (default: ``os.environ``).

        >>> Config.from_env({"ONECARD_HOME": "/srv/onecard"}).home
        PosixPath('/srv/onecard')
        >>> Config.from_env({"ONECARD_DATABASE_URL": " "}).database_url is None
        True
        """
        env = os.environ if environ is None else environ
        home = Path(env.get("ONECARD_HOME") or Path.cwd() / ".onecard").expanduser()
        url = (env.get("ONECARD_DATABASE_URL") or "").strip() or None
        return cls(home=home, database_url=url)
