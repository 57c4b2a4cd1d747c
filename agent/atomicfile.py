"""Write a file so that a reader sees the old content or the new, never half of it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """Replace `path` with `text` (via a temporary file and rename), readable and writable by the owner only
    unless `mode` says otherwise; the mode is set explicitly, whatever the umask."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w") as out:
            out.write(text)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def write_json_atomic(path: Path, data: Any, mode: int = 0o600, indent: int | None = None) -> None:
    write_atomic(path, json.dumps(data, indent=indent, sort_keys=True), mode)
