"""labctl's exceptions; the CLI turns each into one line and a non-zero exit code."""


class LabError(Exception):
    """Something the user can act on; the message says what and where."""


class TopologyError(LabError):
    """The topology file is invalid; the message names the file, the field and the problem."""
