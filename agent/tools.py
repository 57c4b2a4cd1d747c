"""`evpn-agent status` and `evpn-agent rib` (click): what a person asks of a running agent.

`evpn-agent run` (agent/cli.py) does not come through here, so the daemon never loads click.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .cli import _load, run
from .config import ConfigError


@click.group()
def tools() -> None:
    """BGP-EVPN host agent: advertises this VTEP through gobgpd and programs VXLAN flood entries."""


@tools.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run_command(args: tuple[str, ...]) -> None:
    """Run the agent until SIGTERM/SIGINT (options: evpn-agent run --help)."""
    sys.exit(run(list(args)))


run_command.name = "run"
@tools.command()
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


@tools.command()
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
    tools()
