"""What names an LM's answers in the cache, beside the model: its endpoint and its LoRA file.

The endpoint is keyed without credentials (a key in the URL must not reach the cache
file), and the LoRA file by its content, so retraining an adapter in place does not
replay the old adapter's answers.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

__all__ = ["endpoint_identity", "file_digest"]


def endpoint_identity(api_base: str) -> str:
    """``scheme://host:port/path`` of an endpoint, without user, password, query or fragment."""
    parts = urlsplit(api_base)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path.rstrip('/')}"


def file_digest(path: str) -> str:
    """The first 16 hex digits of the file's SHA-256, or ``missing:<path>`` when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return f"missing:{path}"  # the backend raises a clear error when it tries to load it
    return digest.hexdigest()[:16]
