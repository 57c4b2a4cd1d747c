"""evpn-agent: the host agent that turns BGP-EVPN routes into VXLAN forwarding state.

Where things live:
- routes.py     route dataclasses (Type-2/3/5), no I/O
- codec.py      gobgp protobuf <-> route dataclasses (decode checks hostile input)
- desired.py    RIB view -> desired kernel state per VNI (remote VTEPs, remote MACs)
- fdb.py        desired vs owned kernel entries -> a change set
- kernel.py     netlink (through netlink_bulk.py, no netlink library): read and apply FDB entries
- localmacs.py  local VM MACs from the bridges' FDB (neighsock.py: a BPF-filtered netlink listener)
- gobgp.py      gRPC client of the local gobgpd
- service.py    the loop: advertise, watch, batch, reconcile, reconnect
"""
