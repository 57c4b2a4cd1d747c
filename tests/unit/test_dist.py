"""protos.dist: version parsing and which gobgp is selected (fake directories, fake runners)."""

from __future__ import annotations

from pathlib import Path

import pytest

from protos import dist
from protos.dist import Dist, DistError


def _binary(path: Path, executable: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\necho 'gobgpd version 3.36.0'\n")
    path.chmod(0o755 if executable else 0o644)
    return path


def _local(tmp_path: Path, executable: bool = True, versions: str | None = None) -> Path:
    local = tmp_path / ".gobgp"
    _binary(local / "root/usr/bin/gobgpd", executable)
    _binary(local / "root/usr/bin/gobgp", executable)
    if versions is not None:
        (local / "versions").write_text(versions)
    return local


@pytest.mark.parametrize(("text", "version"), [
    ("gobgpd version 3.36.0\n", "3.36.0"),
    ("gobgpd version 3.10.0", "3.10.0"),
    ("gobgp version v3.25.0-dev\n", "3.25.0"),
    ("some banner\ngobgpd version 4.0\n", "4.0"),
])
def test_parse_version(text: str, version: str) -> None:
    assert dist.parse_version(text) == version


@pytest.mark.parametrize("text", ["", "gobgpd", "version x.y", "flag provided but not defined: -version"])
def test_parse_version_refuses_garbage(text: str) -> None:
    with pytest.raises(DistError, match="cannot read a version"):
        dist.parse_version(text)


@pytest.mark.parametrize(("debian", "upstream"), [
    ("3.10.0-1+b4", "3.10.0"), ("3.36.0-2", "3.36.0"), ("1:3.36.0-2+b3", "3.36.0"), ("3.36.0", "3.36.0"),
])
def test_upstream_version(debian: str, upstream: str) -> None:
    assert dist.upstream_version(debian) == upstream


@pytest.mark.parametrize(("version", "recent"), [
    ("3.10.0", False), ("3.24.9", False), ("3.25", True), ("3.25.0", True), ("3.36.0", True), ("4.0.0", True),
])
def test_is_recent(version: str, recent: bool) -> None:
    assert dist.is_recent(version) is recent


def test_version_tuple_compares_numerically() -> None:
    assert dist.version_tuple("3.9.0") < dist.version_tuple("3.10.0") < dist.version_tuple("3.36")


def test_versions_file() -> None:
    text = "# recorded by bootstrap\ngobgpd 3.36.0-2+b3\n\ngolang-github-osrg-gobgp-dev 3.36.0-2\n"
    assert dist.parse_versions_file(text) == {
        "gobgpd": "3.36.0-2+b3", "golang-github-osrg-gobgp-dev": "3.36.0-2",
    }
    with pytest.raises(DistError, match="bootstrap"):
        dist.parse_versions_file("gobgpd\n")


def test_select_prefers_project_local(tmp_path: Path) -> None:
    local = _local(tmp_path)
    chosen = dist.select(local_dir=local, system_root=tmp_path / "sys")
    assert chosen.origin == "project"
    assert chosen.gobgpd == local / "root/usr/bin/gobgpd"
    assert chosen.gobgp == local / "root/usr/bin/gobgp"
    assert chosen.proto_dir == local / "root/usr/share/gocode/src/github.com/osrg/gobgp/api"
    assert dist.program("gobgp", chosen) == chosen.gobgp


def test_select_falls_back_to_system(tmp_path: Path) -> None:
    system = tmp_path / "sys"
    _binary(system / "usr/bin/gobgpd")
    chosen = dist.select(local_dir=tmp_path / "absent", system_root=system)
    assert chosen == Dist("system", system, None)
    assert chosen.gobgpd == system / "usr/bin/gobgpd"
    assert chosen.proto_dir == system / "usr/share/gocode/src/github.com/osrg/gobgp/api"


def test_select_ignores_a_local_copy_that_cannot_run(tmp_path: Path) -> None:
    local = _local(tmp_path, executable=False)
    assert dist.select(local_dir=local, system_root=tmp_path / "sys").origin == "system"


def test_program_missing_says_bootstrap(tmp_path: Path) -> None:
    chosen = dist.select(local_dir=tmp_path / "absent", system_root=tmp_path / "sys")
    with pytest.raises(DistError, match="scripts/bootstrap"):
        dist.program("gobgpd", chosen)
    with pytest.raises(ValueError):
        chosen.program("evpn-agent")


def test_daemon_version_asks_the_binary(tmp_path: Path) -> None:
    chosen = dist.select(local_dir=_local(tmp_path), system_root=tmp_path / "sys")
    calls: list[list[str]] = []

    def run(argv: list[str]) -> str:
        calls.append(argv)
        return "gobgpd version 3.36.0\n"

    assert dist.daemon_version(chosen, run) == "3.36.0"
    assert calls == [[str(chosen.gobgpd), "--version"]]


def test_proto_version_of_project_local_copy_is_the_record(tmp_path: Path) -> None:
    local = _local(tmp_path, versions="gobgpd 3.36.0-2+b3\ngolang-github-osrg-gobgp-dev 3.36.0-2\n")
    chosen = dist.select(local_dir=local, system_root=tmp_path / "sys")

    def run(argv: list[str]) -> str:
        raise AssertionError(f"dpkg must not be asked about the project-local copy: {argv}")

    assert dist.proto_version(chosen, run) == "3.36.0"


def test_proto_version_without_record_says_bootstrap(tmp_path: Path) -> None:
    chosen = dist.select(local_dir=_local(tmp_path), system_root=tmp_path / "sys")
    with pytest.raises(DistError, match="run scripts/bootstrap again"):
        dist.proto_version(chosen)
    (chosen.versions_file or tmp_path).write_text("gobgpd 3.36.0-2+b3\n")
    with pytest.raises(DistError, match="golang-github-osrg-gobgp-dev"):
        dist.proto_version(chosen)


def test_proto_version_of_system_copy_asks_dpkg(tmp_path: Path) -> None:
    chosen = dist.select(local_dir=tmp_path / "absent", system_root=tmp_path / "sys")
    assert dist.proto_version(chosen, lambda argv: "3.10.0-1") == "3.10.0"

    def not_installed(argv: list[str]) -> str:
        raise DistError("dpkg-query failed")

    with pytest.raises(DistError, match="not installed"):
        dist.proto_version(chosen, not_installed)


def test_mismatch_is_one_line(tmp_path: Path) -> None:
    chosen = Dist("project", tmp_path / "root", tmp_path / "versions")
    assert dist.mismatch("3.36.0", "3.36.0", chosen) is None
    problem = dist.mismatch("3.36.0", "3.10.0", chosen)
    assert problem is not None and "\n" not in problem
    assert "3.36.0" in problem and "3.10.0" in problem and "bootstrap" in problem


def test_stubs_mismatch(tmp_path: Path) -> None:
    chosen = Dist("project", tmp_path / "root", tmp_path / "versions")
    assert dist.stubs_mismatch("3.36.0", "3.36.0", chosen) is None
    problem = dist.stubs_mismatch("3.10.0", "3.36.0", chosen)
    assert problem is not None and "\n" not in problem
    assert "3.10.0" in problem and "3.36.0" in problem and "protos.generate" in problem
    missing = dist.stubs_mismatch(None, "3.36.0", chosen)
    assert missing is not None and "not generated" in missing and "protos.generate" in missing


def test_generate_refuses_a_mismatch_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from protos import generate

    chosen = Dist("project", tmp_path / "root", tmp_path / "versions")
    monkeypatch.setattr(dist, "select", lambda: chosen)
    monkeypatch.setattr(dist, "daemon_version", lambda d=None: "3.36.0")
    monkeypatch.setattr(dist, "proto_version", lambda d=None: "3.10.0")
    assert generate.main(["--out-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "version mismatch" in err and "3.10.0" in err
    assert not (tmp_path / "out").exists()


def test_split_exe_link() -> None:
    assert dist.split_exe_link("/usr/bin/gobgpd") == (Path("/usr/bin/gobgpd"), False)
    assert dist.split_exe_link("/w/.gobgp/root/usr/bin/gobgpd (deleted)") == (Path("/w/.gobgp/root/usr/bin/gobgpd"), True)


def test_describe_process_of_this_process() -> None:
    import os
    import sys

    text = dist.describe_process(os.getpid(), lambda argv: "gobgpd version 3.36.0\n")
    assert text == f"{Path(os.readlink('/proc/self/exe')).name} 3.36.0 ({os.readlink('/proc/self/exe')})"
    assert Path(sys.executable).resolve().name in text
    assert "not running" in dist.describe_process(2**22 + 12345)
