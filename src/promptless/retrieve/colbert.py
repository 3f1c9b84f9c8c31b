"""ColBERTv2: a client for a remote ColBERTv2 search server (the protocol DSPy's hosted wiki17 index speaks).

The server answers ``GET {url}?query=...&k=...`` (or ``POST {url}`` with a JSON
body ``{"query": ..., "k": ...}``) with ``{"topk": [{"text", "pid", "rank",
"score", "prob"}, ...]}``. Errors are typed: an unreachable server raises
``RetrieverUnavailable`` (after ``num_retries``), a reply that is not that JSON
raises ``RetrievalError`` showing what came back. Identical queries are answered
from a small in-memory cache.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from typing import Any

from promptless.retrieve.base import Passage, RetrievalError, Retriever, RetrieverUnavailable

SHOWN = 300  # characters of a bad reply quoted in the error


class ColBERTv2(Retriever):
    """``ColBERTv2("http://host:port/wiki17_abstracts")("query", k=5)`` -> Passages with pid, score and prob."""

    def __init__(
        self,
        url: str,
        port: int | str | None = None,
        *,
        post_requests: bool = False,
        timeout: float = 10.0,
        num_retries: int = 1,
        cache_size: int = 1024,
    ) -> None:
        self.url = f"{url.rstrip('/')}:{port}" if port else url
        self.post_requests, self.timeout, self.num_retries = post_requests, timeout, max(0, num_retries)
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, int], list[Passage]] = OrderedDict()
        self._lock = threading.Lock()
        self._client: Any = None

    def search(self, query: str, k: int) -> list[Passage]:
        key = (query, k)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return list(self._cache[key])
        passages = self._parse(self._request(query, k), k)
        if self.cache_size > 0:
            with self._lock:
                self._cache[key] = passages
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return list(passages)

    # -- transport ---------------------------------------------------------------------------
    def _http(self) -> Any:
        import httpx

        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self.timeout)
            return self._client

    def _request(self, query: str, k: int) -> Any:
        """One search over HTTP, retrying what is transient; returns the httpx response of a 2xx."""
        import httpx

        client = self._http()
        for attempt in range(self.num_retries + 1):
            try:
                if self.post_requests:
                    response = client.post(self.url, json={"query": query, "k": k})
                else:
                    response = client.get(self.url, params={"query": query, "k": k})
            except (httpx.TransportError, httpx.InvalidURL) as error:
                problem: str = f"{type(error).__name__}: {error}"
                if isinstance(error, httpx.InvalidURL | httpx.UnsupportedProtocol):
                    raise RetrievalError(f"ColBERTv2 at {self.url}: bad URL ({problem})") from None
            else:
                if response.status_code < 400:
                    return response
                problem = f"HTTP {response.status_code}: {response.text[:SHOWN]!r}"
                if response.status_code < 500 and response.status_code != 429:
                    raise RetrievalError(f"ColBERTv2 at {self.url} refused the query ({problem})")
            if attempt < self.num_retries:
                time.sleep(0.25 * 2**attempt)
        raise RetrieverUnavailable(
            f"ColBERTv2 server at {self.url} is unavailable after {self.num_retries + 1} attempt(s) ({problem})"
        )

    def _parse(self, response: Any, k: int) -> list[Passage]:
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RetrievalError(
                f"ColBERTv2 at {self.url} did not answer JSON; it sent: {response.text[:SHOWN]!r}"
            ) from None
        topk = body.get("topk") if isinstance(body, dict) else None
        if not isinstance(topk, list):
            raise RetrievalError(
                f"ColBERTv2 at {self.url} answered without a 'topk' list; it sent: {response.text[:SHOWN]!r}"
            )
        passages = []
        for hit in topk[:k]:
            text = hit.get("long_text", hit.get("text")) if isinstance(hit, dict) else None
            if not isinstance(text, str):
                raise RetrievalError(f"ColBERTv2 at {self.url} sent a hit without 'text': {json.dumps(hit)[:SHOWN]}")
            score = hit.get("score")
            passages.append(
                Passage(
                    text=text,
                    title=hit.get("title"),
                    id=hit.get("pid", hit.get("id")),
                    score=float(score) if isinstance(score, (int, float)) else None,
                    metadata={key: hit[key] for key in ("rank", "prob") if key in hit},
                )
            )
        return passages

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __repr__(self) -> str:
        return f"ColBERTv2({self.url!r})"
