"""What the library writes never carries a credential or a terminal escape sequence.

``redact(text)`` replaces every known secret with ``***``: the API keys backends were
configured with (``register_secret``), ``OPENAI_API_KEY`` from the environment, the
password and credential-like query values of any URL in the text (``user:pw@``,
``?api-key=...``), and ``Bearer`` tokens. It is applied to error texts, the retry log
line, OpenTelemetry error spans, the CLI's output, and the saved description of an LM
(``redact_url``). ``printable(text)`` makes text from files or model output safe to
show on a terminal: control characters (ESC, C1, DEL, bidirectional overrides) become
visible ``\\x1b``-style escapes; newlines and tabs stay unless ``one_line``.
``RedactingFilter`` is a ``logging.Filter`` doing the same to log records (httpx logs
each request URL at INFO).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
MIN_SECRET = 8  # shorter strings are not replaced everywhere (they would mangle text); URLs are handled by shape
ENV_KEYS = ("OPENAI_API_KEY",)
# Query parameter names whose values are credentials (Azure's api-key, SAS sig, token=, key=...).
_SECRET_NAMES = r"(?:api[-_]?key|key|token|access[-_]?token|secret|password|passwd|pwd|sig|signature|auth)"
_SECRET_PARAM = re.compile(_SECRET_NAMES + "$", re.I)
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/\s@'\"<>]+)@")
_QUERY_SECRET = re.compile(
    rf"(?P<name>[?&;]{_SECRET_NAMES}=)"
    r"(?P<value>[^&#\s'\"<>]+)",
    re.I,
)
_BEARER = re.compile(r"(?P<name>\bBearer\s+)(?P<value>[A-Za-z0-9._~+/=-]{6,})", re.I)
_OPENAI_STYLE_KEY = re.compile(r"\bsk-[A-Za-z0-9_-]{16,}")

_secrets: set[str] = set()
_lock = threading.Lock()

# Everything a terminal may act on: C0 controls but \t and \n, DEL, C1 controls, and the bidirectional
# overrides/isolates that make text read differently from what it is (U+202A-U+202E, U+2066-U+2069),
# plus line/paragraph separators.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")
_CONTROL_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")


def register_secret(value: str | None) -> None:
    """Remember a credential (an API key) so that ``redact`` removes it from whatever the library writes."""
    if isinstance(value, str) and len(value.strip()) >= MIN_SECRET:
        with _lock:
            _secrets.add(value.strip())


def register_url_secrets(url: str | None) -> None:
    """Remember the password and the credential-like query values of an endpoint URL."""
    if not url:
        return
    try:
        parts = urlsplit(url)
    except ValueError:
        return
    register_secret(parts.password)
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if _SECRET_PARAM.match(name):
            register_secret(value)


def known_secrets() -> list[str]:
    """The registered secrets and the environment's keys, longest first (so a key's prefix never survives)."""
    with _lock:
        found = set(_secrets)
    found.update(v.strip() for v in (os.environ.get(name) for name in ENV_KEYS) if v and len(v.strip()) >= MIN_SECRET)
    return sorted(found, key=len, reverse=True)


def redact(text: object, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with every known secret (and any given) replaced by ``***``; see the module docstring."""
    out = text if isinstance(text, str) else str(text)
    for secret in (*secrets, *known_secrets()):
        if secret and secret in out:
            out = out.replace(secret, MASK)
    out = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", out)
    out = _QUERY_SECRET.sub(lambda m: f"{m['name']}{MASK}", out)
    out = _BEARER.sub(lambda m: f"{m['name']}{MASK}", out)
    return _OPENAI_STYLE_KEY.sub(MASK, out)


def redact_url(url: str | None) -> str | None:
    """An endpoint URL as it may be saved or shown: no user or password, credential-like query values masked."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2] if "@" in parts.netloc else parts.netloc
        if "@" in parts.netloc:
            netloc = f"{MASK}@{netloc}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode([(k, MASK if _SECRET_PARAM.match(k) else v) for k, v in pairs], safe="*")
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return redact(url)


def printable(text: object, *, one_line: bool = False) -> str:
    """Text safe for a terminal: control characters shown as ``\\x1b``/``\\u202e`` escapes, never sent raw."""
    out = text if isinstance(text, str) else str(text)
    pattern = _CONTROL_ONE_LINE if one_line else _CONTROL
    return pattern.sub(_escape, out)


def safe_text(text: object, *, one_line: bool = False) -> str:
    """``printable(redact(text))``: what the CLI prints from files, model output and errors."""
    return printable(redact(text), one_line=one_line)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class RedactingFilter(logging.Filter):
    """A logging filter that redacts (and makes printable) every record's message before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not format: leave it to logging to report
            return True
        cleaned = safe_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


_filtered: set[str] = set()


def protect_logger(name: str) -> None:
    """Add one ``RedactingFilter`` to the named logger (e.g. ``"httpx"``, which logs request URLs at INFO)."""
    with _lock:
        if name in _filtered:
            return
        _filtered.add(name)
    logging.getLogger(name).addFilter(RedactingFilter())
