"""Atomic, never-overwrite file writes: a crash leaves the old file or none, never half of one."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

__all__ = ["atomic_write"]


def atomic_write(path: str | Path, write: Callable[[str], None], overwrite: bool = False) -> Path:
    """Write ``path`` through ``write(tmp_path)``, then rename the temporary file into place.

    An existing file is an error unless ``overwrite=True``, so a rerun never silently replaces
    a user's results or checkpoints. Returns the path.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; refusing to overwrite it. Pass overwrite=True "
                              "or choose another path.")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        # mkstemp creates 0600; give the file the permissions an ordinary open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
