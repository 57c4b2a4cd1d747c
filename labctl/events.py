"""`labctl events`: one timeline of a lab, merged from labctl's action log and the daemons' logs.

Pure: lines in, `Event`s out, sorted and rendered. What is parsed:

- labctl's actions (`actions.jsonl` in the lab's run directory, written by `actionlog.py`): one JSON
  object per line, `{"time": ISO-8601 with offset, "action": "move", ...fields}`
- the agent's log and the supervisors' lines (`<date> <time>[,ms] [level=L] logger=evpn.X event=E k=v ...`,
  local time): every line with an `event=`
- gobgpd's log (logrus: `time="...Z" level=info msg="Peer Up" Key=10.0.0.101 State=...`): BGP sessions
  going up and down, gobgpd starting, and its errors

Reading the files (and following them) is `timeline.py`'s job.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

SCHEMA = 1
LABCTL = "labctl"

_LOCAL_LINE = re.compile(r"^(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d)(?:[,.](\d{1,6}))? (?:level=(\w+) )?logger=(\S+) (.*)$")
_LOGRUS_LINE = re.compile(r'^time="([^"]+)" level=(\w+) msg="((?:[^"\\]|\\.)*)"\s*(.*)$')
_KV = re.compile(r"""([A-Za-z_][\w-]*)=('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\([^()]*\)|\S+)""")
GOBGPD_MESSAGES = {"Peer Up": "session-up", "Peer Down": "session-down", "gobgpd started": "gobgpd-started"}


@dataclass(frozen=True)
class Event:
    time: float  # seconds since the epoch
    node: str  # "labctl", or the node whose log it is (a hypervisor, <lab>-controller, <lab>-underlay)
    source: str  # labctl, agent, gobgpd, supervisor, keeper
    event: str  # the event name (agent: its event=, labctl: the action, gobgpd: session-up/down ...)
    fields: dict[str, str] = field(default_factory=dict)
    level: str = "info"

    def document(self) -> dict[str, object]:
        """The JSON form (`labctl events --json`: one object per line)."""
        return {"schema": SCHEMA, "time": iso(self.time), "ts": round(self.time, 6), "node": self.node,
                "source": self.source, "event": self.event, "level": self.level, "fields": self.fields}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def key_values(text: str) -> dict[str, str]:
    """`a=1 b='x y' c=("t", 1)` -> {a: 1, b: x y, c: ("t", 1)}; prose around the pairs is ignored."""
    found = {}
    for key, value in _KV.findall(text):
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        found[key] = value
    return found


def _source_of(logger: str) -> str:
    if logger.startswith("evpn.agent"):
        return "agent"
    if logger == "evpn.labctl.supervise":
        return "supervisor"
    return logger.rsplit(".", 1)[-1]


def parse_log_line(line: str, node: str) -> Event | None:
    """One line of a daemon's log file (agent, supervisor, keeper, gobgpd); None if it is no event."""
    line = line.rstrip("\n")
    m = _LOCAL_LINE.match(line)
    if m is not None:
        stamp, fraction, level, logger, rest = m.groups()
        fields = key_values(rest)
        name = fields.pop("event", None)
        if name is None:
            return None
        try:
            ts = datetime.fromisoformat(stamp.replace(" ", "T")).timestamp()  # naive: the machine's local time
        except ValueError:
            return None
        if fraction:
            ts += int(fraction) / 10 ** len(fraction)
        return Event(ts, node, _source_of(logger), name, fields, (level or "info").lower())
    m = _LOGRUS_LINE.match(line)
    if m is not None:
        stamp, level, message, rest = m.groups()
        name = GOBGPD_MESSAGES.get(message)
        if name is None and level not in ("error", "fatal", "panic"):
            return None
        try:
            ts = datetime.fromisoformat(stamp).timestamp()
        except ValueError:
            return None
        fields = key_values(rest)
        if "Key" in fields:
            fields["peer"] = fields.pop("Key")
        if name is None:
            fields["msg"] = message
        return Event(ts, node, "gobgpd", name or "gobgpd-error", fields, level)
    return None


def parse_action_line(line: str) -> Event | None:
    """One line of labctl's action log; None if it is not a complete JSON action (a line being written)."""
    try:
        doc = json.loads(line)
        ts = datetime.fromisoformat(doc.pop("time")).timestamp()
        action = str(doc.pop("action"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return Event(ts, LABCTL, LABCTL, action, {str(k): str(v) for k, v in doc.items()})


def merge(*streams: Iterable[Event]) -> list[Event]:
    """One timeline: by time; events of one file with the same time keep their order in it (stable sort)."""
    return sorted((e for s in streams for e in s), key=lambda e: e.time)


def select(events: Iterable[Event], nodes: tuple[str, ...] = (), names: tuple[str, ...] = (), mac: str | None = None) -> list[Event]:
    """Events of the given nodes (name or suffix), whose event name starts with one of `names`, naming `mac`."""
    def node_ok(e: Event) -> bool:
        return not nodes or any(e.node == n or e.node.endswith(f"-{n}") for n in nodes)

    def mac_ok(e: Event) -> bool:
        return mac is None or mac.lower() in (v.lower() for v in e.fields.values())

    return [e for e in events if node_ok(e) and (not names or e.event.startswith(names)) and mac_ok(e)]


def render_line(e: Event) -> str:
    """`09:24:57.723 oa1-1          agent      entry-added          kind=mac device=vxlan100 ...`"""
    clock = datetime.fromtimestamp(e.time).strftime("%H:%M:%S.%f")[:-3]
    details = " ".join(f"{k}={v}" for k, v in e.fields.items())
    return f"{clock} {e.node:<16} {e.source:<10} {e.event:<22} {details}".rstrip()
