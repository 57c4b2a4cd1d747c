"""labctl: build a BGP-EVPN/VXLAN lab in network namespaces and prove it with real traffic.

Where things live:
- topology.py   the topology YAML, validated into dataclasses (no side effects)
- plan.py       names, addresses and daemon configs derived from a topology (no side effects)
- netns.py      namespaces, links, addresses, bridges, vxlan (pyroute2)
- daemons.py    starting/stopping gobgpd and the agent, by PID
- state.py      what a running lab is made of, under /run/evpn-lab/<lab>/
- lab.py        up / down / kill / revive / apply, with rollback
- verify.py     the checks of `labctl verify`, each with its evidence
- cli.py        the click commands
"""
