"""The module's own exception (bad arguments are ValueError, unknown ids KeyError)."""


class ModelError(Exception):
    """A model file or registry that cannot be used: not an mfrec model, inconsistent shapes,
    a malformed index, a missing file or a checksum mismatch."""
