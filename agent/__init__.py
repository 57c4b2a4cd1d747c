"""evpn-agent: the host agent that turns BGP-EVPN routes into VXLAN forwarding state.

Where things live:
- routes.py     route dataclasses (Type-2/3/5), no I/O
- codec.py      gobgp protobuf <-> route dataclasses (decode checks hostile input)
- desired.py    RIB view -> desired kernel state per VNI (remote VTEPs, remote MACs)
- reconcile.py  desired vs kernel vs owned entries -> a plan, applied (ownedset.py: the owned set, packed;
                ledger.py: it on disk)
- kernel.py     netlink (through netlink_bulk.py, no netlink library): read and apply FDB entries
- localmacs.py  local VM MACs from the bridges' FDB (neighsock.py: a BPF-filtered netlink listener)
- gobgp.py      gRPC client of the local gobgpd
- service.py    the loop: advertise, watch, batch, reconcile, reconnect
"""

import os as _os

# Our processes fork only to exec programs (ip, nft, daemons), never to use gRPC in the child: gRPC's fork
# handlers are not wanted, and with them grpcio (1.80 and later) can abort on a fork beside a live channel
# (epoll_wait: Bad file descriptor, grpc/grpc#43055; seen once as `labctl up` dying of SIGABRT). Set before
# gRPC is loaded; whoever set it otherwise is left alone.
_os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
