"""labctl: build a BGP-EVPN/VXLAN lab in network namespaces and prove it with real traffic.

Where things live (pure modules first, then the ones with side effects):
- errors.py        LabError / TopologyError: one actionable line each, printed by the CLI
- topology.py      the topology file (strict YAML loader), validated into dataclasses; lab-name rule;
                   editing returns a new, validated Topology
- scale.py         the generated lab of H hosts x M VMs over K networks: what `labctl gen` prints and what a
                   topology's `scale:` shorthand expands to (pure)
- generate.py      `labctl gen`: that lab, checked by the loader, as YAML text (pure)
- plan.py          what a topology becomes: the naming scheme (stated once, in its docstring), addresses,
                   file names, BGP neighbours, daemon configs
- bgp.py           one BGP neighbour, rendered as gobgpd TOML, a gobgp protobuf Peer and FRR config lines
- state.py         what a running lab is made of, under /run/evpn-lab/<lab>/state.json
- rundir.py        the run directory on disk: 0700 directories, 0600 files whatever the umask
- netns.py         netlink primitives: namespaces, links, addresses, bridges, vxlan (pyroute2, via setns)
- daemons.py       starting/stopping processes inside namespaces, by PID only
- supervise.py     the small supervisor every lab daemon runs under (restart with backoff, restarts recorded;
                   stdlib only, run as `python -S -P supervise.py`)
- keeper.py        the underlay router's route keeper (puts back a flapped link's /32 route)
- build.py         wiring a lab from its plan: namespaces, uplinks, bridges, vxlan devices, VM ports
- nodes/           hypervisor kinds, one module each, loaded by name (base.py: the protocol;
                   gobgpd.py: gobgpd for controller and hosts; gobgp_agent.py: gobgpd + evpn-agent; frr.py: FRR;
                   controller.py: the controllers, gobgpd or FRR's bgpd, one or two per lab)
- interrupts.py    SIGINT/SIGTERM noted by the CLI, acted on at safe points (then rolled back)
- lab.py           up / down / kill / revive / apply, with rollback; `Lab.adopt` is the one way a lab changes
- networks.py      attach / detach a VM on a running lab
- migrate.py       move a VM between hypervisors, measuring the outage
- faults.py        daemon kill/restart, link flap, host kill, each measured (10 ms ping loss, RIBs sampled)
- chaos.py         `labctl chaos`, pure: the seeded fault scheduler, the invariants over an observation, the report
- chaosrun.py      `labctl chaos`, doing: injecting each fault, observing the lab, waiting for the invariants
- observe.py       READING a lab: RIBs, FDBs, neighbour tables, sessions, VM probes, waiting (`poll`
                   returns the last observation); nothing in it judges
- capture.py       packet captures and raw frames inside namespaces; one-line packet summaries (pure)
- sniff.py         `labctl capture`: tcpdump inside a node's namespace, to a pcap or as live lines
- netem.py         `labctl netem`: a host's uplink impaired (tc netem, or the delay line where the kernel lacks it)
- delayline.py     the userspace delay line: delay, jitter and loss of what a host sends (a supervised daemon)
- probes.py        hostile traffic made for real: VXLAN injection, spoofed ARP, raw IP from a namespace
- portsec.py       tenant isolation on a hypervisor: per-port security, the host stack out of the VMs' reach (nftables)
- verify.py        JUDGING: the checks of `labctl verify`, each with its evidence, from what observe read
- status.py        `labctl status`: what observe read, collected once (StatusView), shown as tables
- report.py        the JSON documents of check/status/verify --json and verify's JUnit XML (pure)
- graph.py         `labctl graph`: a model of the lab, rendered as Graphviz dot or Mermaid (pure; `dot` at the edge)
- actionlog.py     labctl's own actions (up, kill, move, ...) appended to the lab's actions.jsonl
- events.py        `labctl events`: log lines of labctl, the agents, gobgpd and the supervisors parsed and merged (pure)
- timeline.py      reading (and following) those files in the lab's run directory
- progress.py      progress of up/verify on stderr: a live bar on a terminal, one line per step elsewhere
- memory.py        RSS and PSS of every process in a lab's namespaces, per role (printed by up and status)
- parallel.py      a bounded thread pool that stops on the first failure or an interrupt (up, verify)
- cli.py           the click commands; errors become one line and an exit code here
"""

import os as _os

_os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")  # before gRPC is loaded; why: agent/__init__.py
