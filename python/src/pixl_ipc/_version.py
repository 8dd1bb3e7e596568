"""The package's version, written here only (``pyproject.toml`` reads it).

It versions this implementation. The protocol it speaks is versioned apart,
as :data:`pixl_ipc.PROTOCOL_VERSION`.
"""

__version__ = "2.0.0"
