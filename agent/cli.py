"""`evpn-agent`: run the host agent, or show what it sees."""

from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import click

from .config import AgentConfig, ConfigError, load_config_file, parse_config
from .errors import AgentFailure
from .routes import is_number


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
        stream=sys.stderr,
    )


def _load(config: Path | None, overrides: dict[str, Any]) -> AgentConfig:
    raw: dict[str, Any] = load_config_file(config) if config else {}
    raw.update({k: v for k, v in overrides.items() if v not in (None, ())})
    return parse_config(raw)


def _vni_flags(values: tuple[str, ...]) -> list[dict[str, Any]]:
    out = []
    for value in values:
        parts = value.split(":")
        if len(parts) != 3 or not is_number(parts[0]):
            raise ConfigError(f"--vni {value!r}: expected VNI:DEVICE:BRIDGE, e.g. 100:vxlan100:br0")
        out.append({"vni": int(parts[0]), "device": parts[1], "bridge": parts[2]})
    return out


@click.group()
def main() -> None:
    """BGP-EVPN host agent: advertises this VTEP through gobgpd and programs VXLAN flood entries."""


@main.command()
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="YAML/JSON config file")
@click.option("--gobgp", "gobgp_address", help="gobgpd gRPC address (default 127.0.0.1:50051)")
@click.option("--vtep", help="this host's VTEP IPv4 address")
@click.option("--vni", "vnis", multiple=True, help="VNI:DEVICE:BRIDGE, repeatable (replaces the file's vnis)")
@click.option("--route-target-asn", type=int, help="AS used for default route targets ASN:VNI")
@click.option("--status-file", type=click.Path(path_type=Path))
@click.option("--state-file", type=click.Path(path_type=Path))
@click.option("--log-level", default="info", show_default=True)
def run(config_file: Path | None, gobgp_address: str | None, vtep: str | None, vnis: tuple[str, ...],
        route_target_asn: int | None, status_file: Path | None, state_file: Path | None, log_level: str) -> None:
    """Run the agent until SIGTERM/SIGINT."""
    from .kernel import Kernel
    from .service import Agent
    from .vxlan_guard import VxlanGuard

    _setup_logging(log_level)
    try:
        overrides = {
            "gobgp_address": gobgp_address, "vtep": vtep, "route_target_asn": route_target_asn,
            "status_file": str(status_file) if status_file else None,
            "state_file": str(state_file) if state_file else None,
            "vnis": _vni_flags(vnis) or None,
        }
        cfg = _load(config_file, overrides)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    kernel = Kernel()
    guard = VxlanGuard() if cfg.vxlan_source_guard else None  # VXLAN only from the RIB's VTEPs (agent/vxlan_guard.py)
    agent = Agent(cfg, kernel, config_loader=lambda: _load(config_file, overrides), vxlan_guard=guard)

    def _stop(signum: int, _frame: object) -> None:
        logging.getLogger("evpn.agent").info("event=stopping signal=%d", signum)
        agent.stop_event.set()

    def _reload(signum: int, _frame: object) -> None:
        logging.getLogger("evpn.agent").info("event=reload-requested signal=%d", signum)
        agent.request_reload()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGHUP, _reload)
    logging.getLogger("evpn.agent").info(
        "event=starting vtep=%s gobgp=%s vnis=%s", cfg.vtep, cfg.gobgp_address, ",".join(str(v.vni) for v in cfg.vnis)
    )
    try:
        agent.run()
    except AgentFailure as exc:
        logging.getLogger("evpn.agent").error("event=agent-failed error=%r (exiting for a restart)", str(exc))
        raise click.ClickException(f"agent failed: {exc}") from None
    finally:
        kernel.close()


@main.command()
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="the agent's config (its status_file is read)")
@click.option("--status-file", type=click.Path(path_type=Path), help="status file to read (default: from --config)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def status(config_file: Path | None, status_file: Path | None, as_json: bool) -> None:
    """Is the agent live, is its gobgpd session up, which VTEPs does each VNI flood to, what went wrong lately.

    Example: evpn-agent status --config /etc/evpn-agent/agent.yaml --json
    """
    from .statusview import render, summary

    path = status_file
    if path is None:
        try:
            cfg = _load(config_file, {}) if config_file else None
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        path = cfg.status_file if cfg is not None else None
    if path is None:
        raise click.ClickException("no status file: give --status-file, or --config with status_file set")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"status file {path}: {exc} (is the agent running with status_file set?)") from None
    if not isinstance(data, dict):
        raise click.ClickException(f"status file {path}: not a JSON object")
    view = summary(data)
    if as_json:
        click.echo(json.dumps(view, indent=1, sort_keys=True))
    else:
        for line in render(view):
            click.echo(line)
    if not view["ready"]:
        sys.exit(1)


@main.command()
@click.option("--gobgp", "gobgp_address", default="127.0.0.1:50051", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def rib(gobgp_address: str, as_json: bool) -> None:
    """Show the EVPN routes in the local gobgpd, decoded as the agent sees them."""
    from .codec import MalformedRoute, decode_path
    from .errors import GobgpUnavailable
    from .gobgp import GobgpClient
    from .views import route_row

    client = GobgpClient(gobgp_address)
    try:
        client.wait_ready(timeout=3.0)
        rows = []
        for path in client.list_evpn():
            try:
                event = decode_path(path)
            except MalformedRoute as exc:
                rows.append({"type": "malformed", "error": str(exc)})
                continue
            if event is not None:
                rows.append(route_row(event))
    except GobgpUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        client.close()
    if as_json:
        click.echo(json.dumps(rows, indent=1))
    else:
        for row in rows:
            click.echo(" ".join(f"{k}={v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
