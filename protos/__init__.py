"""gobgp API bindings, generated at set-up time from the installed Debian protos.

Run ``python -m protos.generate`` (the bootstrap script does it) to create
``protos/gobgpapi``; nothing generated is committed.
"""
