"""Data at rest, private to the service's own user: directories 0700, files 0600.

Databases hold shelter addresses, webhook secrets and whole alerts; logs and the local broker's
segments hold metadata about who works with whom. Nobody else on the machine reads them.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077


def keep_private(data_dir: Path) -> None:
    """From now on every file this process (and any process it starts) creates is 0600, every directory
    0700; the data directory and what lies at its top (left by an earlier version) are made so too."""
    os.umask(PRIVATE_UMASK)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    data_dir.chmod(0o700)
    for path in data_dir.iterdir():
        # Another service of the same data directory may be removing a file meanwhile (a SQLite journal).
        with contextlib.suppress(FileNotFoundError):
            _tighten(path)


def _tighten(path: Path) -> None:
    mode = path.lstat().st_mode
    if stat.S_ISDIR(mode):
        path.chmod(0o700)
    elif stat.S_ISREG(mode):
        path.chmod(0o600)
