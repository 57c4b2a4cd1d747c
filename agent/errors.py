"""Exceptions shared across the agent's modules."""


class KernelError(RuntimeError):
    """A netlink operation failed; the message says which entry and why."""


class GobgpUnavailable(RuntimeError):
    """The local gobgpd cannot be reached or dropped the connection."""


class GobgpRefused(GobgpUnavailable):
    """gobgpd answered but refused one request (e.g. an invalid path): the session itself is fine.

    A subclass of GobgpUnavailable so callers that only care whether a call worked need one except."""


class AgentFailure(RuntimeError):
    """The agent cannot go on telling the truth (a worker died): it exits non-zero to be restarted."""
