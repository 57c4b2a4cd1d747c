"""labctl's own actions on a lab (up, kill, revive, apply, move, attach, detach, restart, flap, verify ...),
appended as JSON lines to the lab's run directory (`actions.jsonl`), for `labctl events`.

One line per record, written with a single append (O_APPEND), so lines of concurrent labctl runs never
interleave. Recording never breaks an action: a failed write is logged and forgotten.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

from .rundir import PRIVATE_FILE, private_dir

log = logging.getLogger("evpn.labctl.actions")


def action_line(action: str, fields: dict[str, object], now: datetime | None = None) -> str:
    """The JSON line of one action (pure): time first, then the action, then its fields as strings."""
    stamp = (now or datetime.now(UTC)).isoformat(timespec="microseconds")
    return json.dumps({"time": stamp, "action": action, **{k: str(v) for k, v in fields.items()}}) + "\n"


def record(path: Path, action: str, **fields: object) -> None:
    """Append one action to the lab's action log."""
    line = action_line(action, fields)
    log.info("event=action action=%s %s", action, " ".join(f"{k}={v}" for k, v in fields.items()))
    try:
        private_dir(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    except OSError as exc:
        log.warning("event=action-not-recorded path=%s error=%r", path, str(exc))
