"""`labctl graph`: a picture of a lab, as a model built from its topology (and, for a running lab, what
was observed: BGP session states at each controller, killed hosts and controllers), rendered as Graphviz
dot or Mermaid.

Pure: nothing here reads the lab or runs a program; the CLI hands in what `observe` read and turns the
dot source into SVG/PNG with Graphviz's `dot` (`render_image`, the one side effect, kept at the end).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

from .errors import LabError
from .plan import LabPlan
from .topology import Topology

# one colour per network (in topology order, cycling): Tableau 10, readable on white and as node fill
NETWORK_COLOURS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f", "#bab0ac")
SESSION_COLOURS = {"ESTABLISHED": "#2e7d32", "planned": "#9e9e9e", "down": "#c62828"}
SESSION_OTHER = "#ef6c00"  # ACTIVE, CONNECT, OPENSENT, OPENCONFIRM, IDLE: trying, not up
DOWN_FILL = "#f8d7da"
PLANNED = "planned"  # a topology drawn without a lab: no session has a state yet
FORMATS = ("svg", "png", "dot", "mermaid")


@dataclass(frozen=True)
class VmBox:
    name: str
    mac: str
    ip: str
    network: str
    detached: bool


@dataclass(frozen=True)
class HostBox:
    name: str
    asn: int
    vtep: str
    kind: str
    uplink: str  # the node's /30 to the underlay router
    down: bool  # killed (labctl kill)
    sessions: tuple[str, ...]  # each controller's BGP state for this host (controllers' order): ESTABLISHED, ACTIVE, ..., "down", "planned"
    vms: tuple[VmBox, ...]

    @property
    def session(self) -> str:
        """The first controller's view (the only one in a one-controller lab)."""
        return self.sessions[0]


@dataclass(frozen=True)
class ControllerBox:
    name: str
    address: str
    asn: int
    kind: str  # gobgpd or frr
    uplink: str
    down: bool  # killed (labctl kill)

    @property
    def node_id(self) -> str:
        return "controller" if self.name == "controller" else "ctl:" + self.name


@dataclass(frozen=True)
class NetworkKey:
    name: str
    vni: int
    subnet: str
    colour: str


@dataclass(frozen=True)
class LabGraph:
    lab: str
    running: bool
    controllers: tuple[ControllerBox, ...]
    links: str  # the underlay's link prefix
    networks: tuple[NetworkKey, ...]
    hosts: tuple[HostBox, ...]


def build_graph(topo: Topology, down_hosts: list[str] | tuple[str, ...] = (), sessions: dict[str, dict[str, str]] | None = None,
                down_controllers: list[str] | tuple[str, ...] = ()) -> LabGraph:
    """The picture's model. `sessions` (controller name -> host VTEP -> BGP state there) is None for a
    topology without a lab: everything is drawn as planned. A host a controller does not list, and every
    session of a killed controller (`down_controllers`, by name), is "down"."""
    plan = LabPlan(topo)
    colours = {n.name: NETWORK_COLOURS[i % len(NETWORK_COLOURS)] for i, n in enumerate(topo.networks)}
    hosts = []
    for h in topo.hosts:
        states = []
        for ctl in topo.controllers:
            if sessions is None:
                states.append(PLANNED)
            elif h.name in down_hosts or ctl.name in down_controllers:
                states.append("down")
            else:
                states.append(sessions.get(ctl.name, {}).get(str(h.vtep), "down"))
        vms = tuple(VmBox(vm.name, vm.mac, str(vm.ip), vm.network, vm.detached) for vm in h.vms)
        hosts.append(HostBox(h.name, h.asn, str(h.vtep), h.kind, str(plan.uplink(h.name).subnet), h.name in down_hosts, tuple(states), vms))
    controllers = tuple(ControllerBox(c.name, str(c.address), c.asn, c.kind, str(plan.uplink(plan.controller_namespace(c)).subnet),
                                      c.name in down_controllers) for c in topo.controllers)
    return LabGraph(
        lab=topo.lab, running=sessions is not None, controllers=controllers, links=str(topo.links),
        networks=tuple(NetworkKey(n.name, n.vni, str(n.subnet), colours[n.name]) for n in topo.networks),
        hosts=tuple(hosts),
    )


def session_colour(state: str) -> str:
    return SESSION_COLOURS.get(state, SESSION_OTHER)


def _colour_of(graph: LabGraph, network: str) -> str:
    return next((n.colour for n in graph.networks if n.name == network), "#cccccc")


def _title(graph: LabGraph) -> str:
    down = [c.name for c in graph.controllers if c.down] + [h.name for h in graph.hosts if h.down]
    status = "running" if graph.running else "planned (from the topology file)"
    return f"lab {graph.lab}: {status}" + (f"; down: {', '.join(down)}" if down else "")


def _bgp_text(graph: LabGraph, h: HostBox) -> str:
    """`BGP ESTABLISHED`, or with two controllers `BGP controller ESTABLISHED, ctl2 ACTIVE`."""
    if len(graph.controllers) == 1:
        return f"BGP {h.session}"
    return "BGP " + ", ".join(f"{c.name} {state}" for c, state in zip(graph.controllers, h.sessions))


# -- Graphviz dot ------------------------------------------------------------------------------------


def _q(text: str) -> str:
    """A dot double-quoted string (labels use \\n for line breaks, which dot understands)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _attrs(**attrs: str) -> str:
    return "[" + ", ".join(f"{k}={_q(v)}" for k, v in attrs.items()) + "]"


def to_dot(graph: LabGraph) -> str:
    lines = [
        f"graph {_q('lab ' + graph.lab)} {{",
        f"  graph {_attrs(label=_title(graph), labelloc='t', fontname='Helvetica', fontsize='14', rankdir='TB', nodesep='0.25', ranksep='0.6')};",
        f"  node {_attrs(fontname='Helvetica', fontsize='10')};",
        f"  edge {_attrs(fontname='Helvetica', fontsize='9')};",
        f"  underlay {_attrs(label=f'underlay router{chr(10)}links {graph.links}', shape='cylinder', style='filled', fillcolor='#eceff1')};",
    ]
    for c in graph.controllers:
        label = f"{c.name} (eBGP hub)\n{c.address}  AS {c.asn}\n{c.kind}" + ("\nDOWN (killed)" if c.down else "")
        lines.append(f"  {_q(c.node_id)} {_attrs(label=label, shape='box', style='rounded,filled,bold' + (',dashed' if c.down else ''), fillcolor='#ffcdd2' if c.down else '#e3f2fd', color='#c62828' if c.down else '#000000', **{'class': 'down' if c.down else 'up'})};")
        lines.append(f"  underlay -- {_q(c.node_id)} {_attrs(color='#c62828' if c.down else '#90a4ae', style='dashed' if c.down else 'solid', label=c.uplink)};")
    for h in graph.hosts:
        cluster = "cluster_" + re.sub(r"[^A-Za-z0-9_]", "_", h.name)
        state = "DOWN (killed)" if h.down else ("" if h.session == PLANNED else _bgp_text(graph, h))
        host_label = f"{h.name}\nVTEP {h.vtep}  AS {h.asn}\n{h.kind}" + (f"\n{state}" if state else "")
        lines.append(f"  subgraph {_q(cluster)} {{")
        style = {"label": "", "style": "rounded,filled", "color": "#c62828" if h.down else "#78909c",
                 "fillcolor": DOWN_FILL if h.down else "#fafafa"}
        lines.append("    " + "; ".join(f"{k}={_q(v)}" for k, v in style.items()) + ";")
        node_style = {"label": host_label, "shape": "box", "style": "filled,bold" + (",dashed" if h.down else ""),
                      "fillcolor": "#ffcdd2" if h.down else "#ffffff", "color": "#c62828" if h.down else "#37474f",
                      "class": "down" if h.down else "up"}
        lines.append(f"    {_q(h.name)} {_attrs(**node_style)};")
        for vm in h.vms:
            fill = "#e0e0e0" if h.down or vm.detached else _colour_of(graph, vm.network)
            label = f"{vm.name}\n{vm.ip}\n{vm.mac}" + ("\n(detached)" if vm.detached else "")
            lines.append(f"    {_q('vm:' + vm.name)} {_attrs(label=label, shape='ellipse', style='filled', fillcolor=fill, color=fill, fontcolor='#000000' if h.down else '#ffffff', fontsize='9')};")
            lines.append(f"    {_q(h.name)} -- {_q('vm:' + vm.name)} {_attrs(color=fill, penwidth='1.5')};")
        lines.append("  }")
        lines.append(f"  underlay -- {_q(h.name)} {_attrs(color='#c62828' if h.down else '#90a4ae', style='dashed' if h.down else 'solid', label=h.uplink)};")
        for c, session in zip(graph.controllers, h.sessions):
            bgp_style = "dotted" if session == PLANNED else ("dashed" if session != "ESTABLISHED" else "bold")
            lines.append(f"  {_q(c.node_id)} -- {_q(h.name)} {_attrs(color=session_colour(session), style=bgp_style, penwidth='2', label='eBGP ' + session, fontcolor=session_colour(session))};")
    lines.append(f"  subgraph {_q('cluster_legend')} {{")
    lines.append(f"    label={_q('networks')}; style={_q('rounded')}; color={_q('#b0bec5')};")
    for n in graph.networks:
        lines.append(f"    {_q('net:' + n.name)} {_attrs(label=f'{n.name}  VNI {n.vni}{chr(10)}{n.subnet}', shape='box', style='filled', fillcolor=n.colour, color=n.colour, fontcolor='#ffffff')};")
    lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- Mermaid -----------------------------------------------------------------------------------------


def _mid(prefix: str, name: str) -> str:
    return prefix + re.sub(r"[^A-Za-z0-9_]", "_", name)


def _mtext(text: str) -> str:
    return '"' + text.replace('"', "#quot;").replace("\n", "<br/>") + '"'


def to_mermaid(graph: LabGraph) -> str:
    lines = ["---", f"title: {_title(graph)}", "---", "flowchart TB"]
    lines.append(f"  underlay[({_mtext(f'underlay router{chr(10)}links {graph.links}')})]")
    for c in graph.controllers:
        lines.append(f"  {_mid('ctl_', c.name)}[{_mtext(f'{c.name} (eBGP hub){chr(10)}{c.address} AS {c.asn}{chr(10)}{c.kind}' + (chr(10) + 'DOWN (killed)' if c.down else ''))}]")
    links: list[tuple[str, str]] = []  # (line, linkStyle) in order: Mermaid styles links by index

    def link(text: str, style: str) -> None:
        links.append((text, style))

    classes: dict[str, list[str]] = {}
    for c in graph.controllers:
        link(f"  underlay --- {_mid('ctl_', c.name)}", "stroke:" + ("#c62828,stroke-dasharray:4" if c.down else "#90a4ae"))
        classes.setdefault("down" if c.down else "hub", []).append(_mid("ctl_", c.name))
    for h in graph.hosts:
        hid = _mid("h_", h.name)
        state = "DOWN (killed)" if h.down else ("" if h.session == PLANNED else _bgp_text(graph, h))
        lines.append(f"  subgraph {_mid('c_', h.name)}[{_mtext(h.name + (' DOWN' if h.down else ''))}]")
        lines.append(f"    {hid}[{_mtext(f'{h.name}{chr(10)}VTEP {h.vtep} AS {h.asn}{chr(10)}{h.kind}' + (chr(10) + state if state else ''))}]")
        classes.setdefault("down" if h.down else "host", []).append(hid)
        for vm in h.vms:
            vid = _mid("vm_", vm.name)
            lines.append(f"    {vid}([{_mtext(f'{vm.name}{chr(10)}{vm.ip}{chr(10)}{vm.mac}')}])")
            cls = "gone" if h.down or vm.detached else _mid("net_", vm.network)
            classes.setdefault(cls, []).append(vid)
            link(f"    {hid} --- {vid}", f"stroke:{'#e0e0e0' if cls == 'gone' else _colour_of(graph, vm.network)}")
        lines.append("  end")
        link(f"  underlay ---|{h.uplink}| {hid}", f"stroke:{'#c62828' if h.down else '#90a4ae'}" + (",stroke-dasharray:4" if h.down else ""))
        for c, session in zip(graph.controllers, h.sessions):
            dash = ",stroke-dasharray:2" if session != "ESTABLISHED" else ""
            link(f"  {_mid('ctl_', c.name)} ===|{_mtext('eBGP ' + session)}| {hid}", f"stroke:{session_colour(session)},stroke-width:2px{dash}")
    lines.append(f"  subgraph legend[{_mtext('networks')}]")
    for n in graph.networks:
        nid = _mid("n_", n.name)
        lines.append(f"    {nid}[{_mtext(f'{n.name} VNI {n.vni}{chr(10)}{n.subnet}')}]")
        classes.setdefault(_mid("net_", n.name), []).append(nid)
    lines.append("  end")
    lines += [text for text, _ in links]
    lines += [f"  linkStyle {i} {style}" for i, (_, style) in enumerate(links)]
    lines.append("  classDef host fill:#ffffff,stroke:#37474f,stroke-width:2px")
    lines.append("  classDef hub fill:#e3f2fd,stroke:#000000,stroke-width:2px")
    lines.append("  classDef down fill:#ffcdd2,stroke:#c62828,stroke-width:2px,stroke-dasharray:4")
    lines.append("  classDef gone fill:#e0e0e0,stroke:#9e9e9e")
    for n in graph.networks:
        lines.append(f"  classDef {_mid('net_', n.name)} fill:{n.colour},stroke:{n.colour},color:#ffffff")
    lines += [f"  class {','.join(ids)} {cls}" for cls, ids in classes.items()]
    return "\n".join(lines) + "\n"


def render(graph: LabGraph, fmt: str) -> str:
    """The text formats: dot source or Mermaid."""
    if fmt == "dot":
        return to_dot(graph)
    if fmt == "mermaid":
        return to_mermaid(graph)
    raise LabError(f"--format {fmt!r} is an image format: use render_image (formats: {', '.join(FORMATS)})")


def render_image(dot_source: str, fmt: str) -> bytes:
    """SVG or PNG from dot source, with Graphviz's `dot` (Debian package graphviz, installed by bootstrap)."""
    try:
        done = subprocess.run(["dot", f"-T{fmt}"], input=dot_source.encode(), capture_output=True, timeout=60, check=False)
    except FileNotFoundError:
        raise LabError("Graphviz's 'dot' is not installed (apt-get install graphviz, or run scripts/bootstrap); "
                       "--format dot or mermaid need nothing") from None
    if done.returncode != 0 or not done.stdout:
        raise LabError(f"dot -T{fmt} failed: {done.stderr.decode(errors='replace').strip()[:200]}")
    return done.stdout
