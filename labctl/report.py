"""Machine-readable answers of labctl (pure): the JSON documents of `check --json`, `status --json` and
`verify --json`, and the JUnit XML of `verify --junit`. Every document carries `"schema": SCHEMA`; a field
is only ever added under the same schema number, never renamed or removed (README: "Operating the lab")."""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from .status import StatusView
from .topology import Topology
from .verify import CheckResult

SCHEMA = 1


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def check_document(source: str, topo: Topology | None, error: str | None = None) -> dict[str, Any]:
    """`labctl check --json`: ok, or the one-line error naming the field."""
    doc: dict[str, Any] = {"schema": SCHEMA, "topology": source, "ok": topo is not None and error is None}
    if topo is not None:
        doc.update(lab=topo.lab, hypervisors=len(topo.hosts), vms=len(topo.vms()),
                   networks=[{"name": n.name, "vni": n.vni, "subnet": str(n.subnet)} for n in topo.networks],
                   hosts=[{"name": h.name, "asn": h.asn, "vtep": str(h.vtep), "kind": h.kind, "vms": [vm.name for vm in h.vms]}
                          for h in topo.hosts])
    if error is not None:
        doc["error"] = error
    return doc


def status_document(view: StatusView) -> dict[str, Any]:
    """`labctl status --json`."""
    return {
        "schema": SCHEMA,
        "lab": view.lab,
        "controllers": [
            {"name": c.name, "namespace": c.namespace, "kind": c.kind, "address": c.address, "asn": c.asn, "down": c.down,
             "reachable": not c.down and c.error is None, "error": c.error, "restarts": [asdict(r) for r in c.restarts]}
            for c in view.controllers
        ],
        "hosts": [
            {"name": h.name, "asn": h.asn, "vtep": h.vtep, "kind": h.kind, "down": h.down, "bgp": h.bgp, "control": h.control,
             "restarts": [asdict(r) for r in h.restarts], "remote_vteps": h.remote_vteps,
             "flood": [{"device": d, "vtep": v} for d, v in h.flood],
             "macs": None if h.macs is None else [{**asdict(m), "ips": list(m.ips)} for m in h.macs],
             "mac_error": h.mac_error, "netem": {"topology": h.netem_topology, "kernel": h.netem_kernel}}
            for h in view.hosts
        ],
    }


def verify_document(lab: str, results: list[CheckResult], started: float, seconds: float) -> dict[str, Any]:
    """`labctl verify --json`: each check's id, result (pass/fail), evidence and duration."""
    failed = [r for r in results if not r.ok]
    return {
        "schema": SCHEMA, "lab": lab, "ok": not failed, "started": _iso(started), "seconds": round(seconds, 2),
        "passed": len(results) - len(failed), "failed": len(failed),
        "checks": [{"id": r.id, "name": r.name, "result": "pass" if r.ok else "fail", "evidence": r.evidence,
                    "seconds": round(r.seconds, 2)} for r in results],
    }


def junit_xml(lab: str, results: list[CheckResult], started: float, seconds: float) -> str:
    """`labctl verify --junit FILE`: one test case per check (JUnit XML as Jenkins, GitLab and GitHub read it);
    a failed check is a <failure> whose text is its evidence; a passed one keeps its evidence in <system-out>."""
    failures = sum(1 for r in results if not r.ok)
    suites = ET.Element("testsuites", name="labctl verify", tests=str(len(results)), failures=str(failures),
                        errors="0", time=f"{seconds:.3f}")
    suite = ET.SubElement(suites, "testsuite", name=f"labctl verify: lab {lab}", tests=str(len(results)),
                          failures=str(failures), errors="0", skipped="0", time=f"{seconds:.3f}",
                          timestamp=_iso(started), hostname=socket.gethostname())
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=f"labctl.verify.{lab}", name=r.id, time=f"{r.seconds:.3f}")
        if not r.ok:
            failure = ET.SubElement(case, "failure", message=f"{r.name}: {r.evidence}"[:500], type="CheckFailed")
            failure.text = r.evidence
        out = ET.SubElement(case, "system-out")
        out.text = f"{r.name}\n{r.evidence}"
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"
