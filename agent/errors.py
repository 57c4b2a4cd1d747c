"""Exceptions shared across the agent's modules."""


class KernelError(RuntimeError):
    """A netlink operation failed; the message says which entry and why."""


class GobgpUnavailable(RuntimeError):
    """The local gobgpd cannot be reached or dropped the connection."""
