"""gobgp API bindings, generated at set-up time from the installed Debian protos.

Run ``python -m protos.generate`` (the bootstrap script does it) to create
``protos/gobgpapi``; nothing generated is committed.
"""

import os as _os

_os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")  # before gRPC is loaded; why: agent/__init__.py
