"""Reading an OpenAI-compatible server's replies: the JSON body or the typed error its status means, usage, SSE.

Kept apart from the backend (promptless.lm.openai), which decides what to send and when to
retry; everything here is a pure function of one reply.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from promptless.errors import (
    LMAuthError,
    LMBadRequest,
    LMContextOverflow,
    LMError,
    LMNotFound,
    LMRateLimited,
    LMTimeout,
    LMUnavailable,
)
from promptless.redact import redact
from promptless.types import Usage

if TYPE_CHECKING:
    import httpx

REQUEST_FIELDS = ("response_format", "json_schema", "grammar", "logprobs")  # a 5xx naming one is a refusal
OVERFLOW_HINTS = ("context length", "maximum context", "context window", "too many tokens")


def retry_after(reply: httpx.Response) -> float | None:
    """Seconds from a ``Retry-After`` header (a number or an HTTP date), if the server sent one."""
    value = reply.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime  # lazy: only a rate-limited reply needs it

    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def checked(reply: httpx.Response, url: str, model: str) -> dict[str, Any]:
    """The JSON body of a 2xx reply, or the typed error its status means."""
    status = reply.status_code
    if 200 <= status < 300:
        try:
            data = reply.json()
        except ValueError:
            body = body_excerpt(reply)
            raise LMUnavailable(f"{redact(url)}: HTTP {status} with a body that is not JSON: {body!r}") from None
        if not isinstance(data, dict):
            raise LMUnavailable(f"{redact(url)}: HTTP {status} with unexpected JSON: {body_excerpt(reply)!r}")
        return data
    excerpt, url = body_excerpt(reply), redact(url)  # redacted only on the error path: a 2xx reply pays nothing
    message = f"{url}: HTTP {status}: {excerpt}"
    lowered = excerpt.lower()
    error: type[LMError]
    if status in (401, 403):
        error = LMAuthError
    elif status == 404:
        error, message = LMNotFound, f"{url}: HTTP 404 (is model {model!r} served there?): {excerpt}"
    elif status == 408:
        error = LMTimeout
    elif status == 429:
        error = LMRateLimited
    elif status >= 500 and any(field in lowered for field in REQUEST_FIELDS):
        error = LMBadRequest  # llama.cpp refuses a request format with a 500: retrying cannot help
    elif status >= 500:
        error = LMUnavailable
    elif any(hint in lowered for hint in OVERFLOW_HINTS) or ("exceed" in lowered and "context" in lowered):
        error = LMContextOverflow
    else:
        error = LMBadRequest
    failure = error(message)
    failure.status = status
    if status in (429, 503):
        failure.retry_after = retry_after(reply)
    raise failure


def body_excerpt(reply: httpx.Response) -> str:
    """The start of a reply's body for an error text, redacted: a server may echo the key it was sent."""
    return redact(reply.text[:2000])[:300]


def read_choices(data: dict[str, Any], url: str) -> tuple[list[str], list[str], Usage]:
    """Texts, finish reasons and usage of a reply; a reply without usable choices is a server fault."""
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not all(isinstance(c, dict) for c in choices):
        raise LMUnavailable(redact(f"{url}: the reply has no choices: {str(data)[:300]!r}"))
    texts, reasons = [], []
    for choice in choices:
        message = choice.get("message")
        text = message.get("content") if isinstance(message, dict) else choice.get("text")
        texts.append(text if isinstance(text, str) else "")
        reasons.append(str(choice.get("finish_reason") or "stop"))
    used = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    details = used.get("prompt_tokens_details") if isinstance(used.get("prompt_tokens_details"), dict) else {}
    prompt, completion = as_int(used.get("prompt_tokens")), as_int(used.get("completion_tokens"))
    return texts, reasons, Usage(prompt, completion, as_int(details.get("cached_tokens")), calls=1)


def usage_of(data: dict[str, Any]) -> Usage:
    used = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    return Usage(as_int(used.get("prompt_tokens")), as_int(used.get("completion_tokens")), 0, 1)


def first_token(data: dict[str, Any]) -> str | None:
    """The first generated token's text in a reply with logprobs, if there is one."""
    choices = data.get("choices")
    first = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    logprobs = first.get("logprobs") if isinstance(first.get("logprobs"), dict) else {}
    tokens = logprobs.get("tokens")
    return tokens[0] if isinstance(tokens, list) and tokens and isinstance(tokens[0], str) else None


def as_int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def server_sent_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """The JSON payloads of ``data:`` lines, up to ``[DONE]``; other lines are ignored."""
    for line in lines:
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            return
        try:
            event = json.loads(payload)
        except ValueError:
            continue
        if isinstance(event, dict):
            yield event
