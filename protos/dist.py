"""Which gobgp to run: the project-local copy, else the system's.

``scripts/bootstrap`` unpacks Debian 13's ``gobgpd`` and ``golang-github-osrg-gobgp-dev``
packages into ``.gobgp/root`` when the system's gobgpd is older than ``MIN_VERSION`` (Debian 12
ships 3.10, which is quadratic on EVPN Type-2 routes). Everything here answers from that
directory first and from the system second: the ``gobgpd``/``gobgp`` binaries, the API protos
and their version. The version of a gobgpd is asked of the binary itself (``gobgpd --version``);
the protos' version comes from the package they were unpacked from (recorded by bootstrap in
``.gobgp/versions``) or, for the system's copy, from dpkg.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("evpn.protos.dist")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOCAL_DIR = PROJECT_ROOT / ".gobgp"
SYSTEM_ROOT = Path("/")
BIN_SUBDIR = Path("usr/bin")
PROTO_SUBDIR = Path("usr/share/gocode/src/github.com/osrg/gobgp/api")
VERSIONS_FILE = "versions"
PROTO_PACKAGE = "golang-github-osrg-gobgp-dev"
DAEMON_PACKAGE = "gobgpd"
PROGRAMS = ("gobgpd", "gobgp")
MIN_VERSION = (3, 25, 0)
REGENERATE = ".venv/bin/python -m protos.generate"

_VERSION_RE = re.compile(r"\bversion\s+v?(\d+(?:\.\d+){1,3})\b")

Runner = Callable[[list[str]], str]


class DistError(Exception):
    """No usable gobgp, or the stubs do not match it; the message says what to run."""


@dataclass(frozen=True)
class Dist:
    """One gobgp installation: its binaries, its API protos, and where the protos' version comes from."""

    origin: str  # "project" (.gobgp/root, unpacked by bootstrap) or "system"
    root: Path
    versions_file: Path | None  # project-local: the packages' versions recorded at unpack time

    @property
    def bin_dir(self) -> Path:
        return self.root / BIN_SUBDIR

    @property
    def proto_dir(self) -> Path:
        return self.root / PROTO_SUBDIR

    def program(self, name: str) -> Path:
        if name not in PROGRAMS:
            raise ValueError(f"not a gobgp program: {name!r}")
        return self.bin_dir / name

    @property
    def gobgpd(self) -> Path:
        return self.program("gobgpd")

    @property
    def gobgp(self) -> Path:
        return self.program("gobgp")


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def select(local_dir: Path = LOCAL_DIR, system_root: Path = SYSTEM_ROOT) -> Dist:
    """The project-local gobgp if bootstrap unpacked one (its gobgpd is executable), else the system's."""
    local_root = local_dir / "root"
    if _is_executable(local_root / BIN_SUBDIR / "gobgpd"):
        return Dist("project", local_root, local_dir / VERSIONS_FILE)
    return Dist("system", system_root, None)


def program(name: str, dist: Dist | None = None) -> Path:
    """Path of `name` ("gobgpd" or "gobgp") of the selected gobgp; DistError if it is not there."""
    dist = dist or select()
    path = dist.program(name)
    if not _is_executable(path):
        raise DistError(f"{name} not found at {path} (run scripts/bootstrap to install it)")
    return path


def parse_version(text: str) -> str:
    """'3.36.0' of 'gobgpd version 3.36.0' (the output of ``gobgpd --version``)."""
    match = _VERSION_RE.search(text)
    if match is None:
        raise DistError(f"cannot read a version from {text.strip()[:80]!r}")
    return match.group(1)


def version_tuple(version: str) -> tuple[int, ...]:
    """(3, 36, 0) of '3.36.0'; shorter versions are padded with zeros to three parts."""
    parts = tuple(int(p) for p in version.split("."))
    return parts + (0,) * (3 - len(parts))


def upstream_version(debian_version: str) -> str:
    """Strip epoch and Debian revision: '1:3.10.0-1+b4' -> '3.10.0'."""
    version = debian_version.split(":", 1)[-1]
    return version.rsplit("-", 1)[0] if "-" in version else version


def is_recent(version: str) -> bool:
    """True if this gobgpd has the linear MAC-mobility handling (>= MIN_VERSION)."""
    return version_tuple(version) >= MIN_VERSION


def parse_versions_file(text: str) -> dict[str, str]:
    """``package debian-version`` per line (bootstrap's record) -> {package: debian-version}."""
    versions = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 2:
            raise DistError(f"bad line in versions record: {line!r} (run scripts/bootstrap again)")
        versions[fields[0]] = fields[1]
    return versions


def _run(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise DistError(f"{' '.join(argv)} failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[:200]}")
    return proc.stdout + proc.stderr


def daemon_version(dist: Dist | None = None, run: Runner = _run) -> str:
    """Upstream version of the selected gobgpd, asked of the binary."""
    return version_of(program("gobgpd", dist), run)


def proto_version(dist: Dist | None = None, run: Runner = _run) -> str:
    """Upstream version of the selected protos: bootstrap's record for the project-local copy, dpkg for the system's."""
    dist = dist or select()
    if dist.versions_file is not None:
        try:
            recorded = parse_versions_file(dist.versions_file.read_text())
        except OSError as exc:
            raise DistError(f"no version record {dist.versions_file} (run scripts/bootstrap again)") from exc
        if PROTO_PACKAGE not in recorded:
            raise DistError(f"{dist.versions_file} does not name {PROTO_PACKAGE} (run scripts/bootstrap again)")
        return upstream_version(recorded[PROTO_PACKAGE])
    try:
        out = run(["dpkg-query", "-W", "-f=${Version}", PROTO_PACKAGE])
    except (OSError, DistError) as exc:
        raise DistError(f"package {PROTO_PACKAGE} is not installed (run scripts/bootstrap)") from exc
    return upstream_version(out.strip())


def mismatch(daemon: str, protos: str, dist: Dist) -> str | None:
    """The one-line complaint if the protos are not the gobgpd's version, else None."""
    if daemon == protos:
        return None
    return (f"version mismatch: {dist.origin} gobgpd {daemon} ({dist.gobgpd}) "
            f"but its protos in {dist.proto_dir} are {protos}; run scripts/bootstrap again")


def stubs_version() -> str | None:
    """GOBGP_VERSION of the generated stubs, or None if they were not generated."""
    try:
        from protos.gobgpapi import GOBGP_VERSION  # type: ignore[attr-defined]
    except ImportError:
        return None
    return str(GOBGP_VERSION)


def stubs_mismatch(stubs: str | None, daemon: str, dist: Dist) -> str | None:
    """The actionable complaint if the stubs are missing or not for this gobgpd, else None."""
    if stubs is None:
        return f"gobgp API stubs not generated; run {REGENERATE}"
    if stubs != daemon:
        return (f"gobgp API stubs are for gobgpd {stubs} but the {dist.origin} gobgpd "
                f"({dist.gobgpd}) is {daemon}; run {REGENERATE}")
    return None


def check_stubs_match(dist: Dist | None = None) -> None:
    """Raise DistError unless the generated stubs are for the gobgpd that would run."""
    dist = dist or select()
    problem = stubs_mismatch(stubs_version(), daemon_version(dist), dist)
    if problem:
        raise DistError(problem)


def describe(dist: Dist | None = None) -> str:
    """One line for status output: 'gobgpd 3.36.0 (project: /work/main/.gobgp/root/usr/bin/gobgpd)'."""
    dist = dist or select()
    try:
        version = daemon_version(dist)
    except DistError as exc:
        return f"gobgpd unavailable ({exc})"
    return f"gobgpd {version} ({dist.origin}: {dist.gobgpd})"


def version_of(binary: Path, run: Runner = _run) -> str:
    """Upstream version of any gobgpd/gobgp binary, asked of it."""
    try:
        return parse_version(run([str(binary), "--version"]))
    except OSError as exc:
        raise DistError(f"cannot run {binary}: {exc}") from exc


def split_exe_link(link: str) -> tuple[Path, bool]:
    """(path, replaced) of a /proc/PID/exe link text: the kernel appends ' (deleted)' once the file is gone."""
    suffix = " (deleted)"
    if link.endswith(suffix):
        return Path(link[: -len(suffix)]), True
    return Path(link), False


def describe_process(pid: int, run: Runner = _run) -> str:
    """What a running gobgpd is: 'gobgpd 3.36.0 (/path/to/gobgpd)', from /proc/PID/exe (for `labctl status`)."""
    try:
        binary, replaced = split_exe_link(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return f"pid {pid} not running"
    if replaced:
        return f"{binary.name} (replaced since it started: {binary}; restart the lab)"
    try:
        return f"{binary.name} {version_of(binary, run)} ({binary})"
    except DistError as exc:
        return f"{binary.name} version unknown ({exc})"
