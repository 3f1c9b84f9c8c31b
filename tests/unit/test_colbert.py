"""ColBERTv2 client against a real local HTTP server speaking the ColBERTv2 protocol."""

import json
import math
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from promptless.modules.retrieve import Retrieve
from promptless.retrieve import ColBERTv2, RetrievalError, RetrieverUnavailable

CORPUS = [
    "Paris | Paris is the capital of France.",
    "Berlin | Berlin is the capital of Germany.",
    "Danube | The Danube flows through Vienna.",
    "Brie | Brie is a soft cheese from France.",
]


def search(query: str, k: int) -> dict:
    """Word-overlap scoring standing in for ColBERT; the reply has the server's shape."""
    words = set(re.findall(r"\w+", query.lower()))
    overlap = [(len(words & set(re.findall(r"\w+", text.lower()))), pid) for pid, text in enumerate(CORPUS)]
    scored = sorted(overlap, key=lambda s: -s[0])
    total = sum(math.exp(s) for s, _ in scored[:k])
    topk = [
        {"text": CORPUS[pid], "pid": pid, "rank": rank, "score": float(score), "prob": math.exp(score) / total}
        for rank, (score, pid) in enumerate(scored[:k], start=1)
    ]
    return {"query": query, "topk": topk}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        params = parse_qs(urlparse(self.path).query)
        self.server.seen.append(("GET", urlparse(self.path).path, params))
        self._reply(params["query"][0], int(params["k"][0]))

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append(("POST", urlparse(self.path).path, body))
        self._reply(body["query"], int(body["k"]))

    def _reply(self, query, k):
        mode = self.server.mode
        if mode == "broken-json":
            payload, status = b"<html>Internal proxy page</html>", 200
        elif mode == "no-topk":
            payload, status = json.dumps({"error": "index not loaded"}).encode(), 200
        elif mode == "500":
            payload, status = b"boom", 500
        elif mode == "400":
            payload, status = b"k must be <= 100", 400
        else:
            payload, status = json.dumps(search(query, k)).encode(), 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.seen, httpd.mode = [], "ok"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/wiki17_abstracts"
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def test_get_sends_query_and_k_and_parses_the_hits(server):
    colbert = ColBERTv2(server.url)
    hits = colbert("capital of Germany", k=2)
    assert server.seen == [("GET", "/wiki17_abstracts", {"query": ["capital of Germany"], "k": ["2"]})]
    assert [h.text for h in hits] == [CORPUS[1], CORPUS[0]]
    assert hits[0].id == 1 and hits[0].score == 3.0 and hits[0].metadata["rank"] == 1
    assert 0 < hits[0].metadata["prob"] < 1


def test_post_requests_send_a_json_body(server):
    hits = ColBERTv2(server.url, post_requests=True)("soft cheese", k=1)
    assert server.seen == [("POST", "/wiki17_abstracts", {"query": "soft cheese", "k": 1})]
    assert hits[0].text == CORPUS[3]


def test_port_is_appended_like_dspy(server):
    host, port = server.server_address
    assert ColBERTv2(f"http://{host}", port=port).url == f"http://{host}:{port}"


def test_identical_queries_are_cached(server):
    colbert = ColBERTv2(server.url)
    first = colbert("Vienna Danube", k=2)
    assert colbert("Vienna Danube", k=2) == first
    colbert("Vienna Danube", k=3)
    assert len(server.seen) == 2
    assert ColBERTv2(server.url, cache_size=0)("x", k=1) is not None


def test_retrieve_module_over_colbert_merges_queries(server):
    prediction = Retrieve(k=2, rm=ColBERTv2(server.url))(["France", "soft cheese from France"])
    assert prediction.passages[0] == CORPUS[3]  # scores add up across the two queries
    assert len(server.seen) == 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_server_down_raises_unavailable_quickly():
    url = f"http://127.0.0.1:{free_port()}/wiki17_abstracts"
    started = time.monotonic()
    with pytest.raises(RetrieverUnavailable, match=rf"{url} is unavailable after 2 attempt\(s\) \(ConnectError"):
        ColBERTv2(url, timeout=2)("anything", k=3)
    assert time.monotonic() - started < 3


def test_a_server_that_does_not_answer_in_time_is_unavailable():
    with socket.socket() as sock:  # accepts connections (backlog) but never replies
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
        with pytest.raises(RetrieverUnavailable, match="ReadTimeout"):
            ColBERTv2(url, timeout=0.2, num_retries=0)("q", k=1)


def test_malformed_replies_show_what_came_back(server):
    server.mode = "broken-json"
    with pytest.raises(RetrievalError, match=r"did not answer JSON; it sent: '<html>Internal proxy page</html>'"):
        ColBERTv2(server.url)("q", k=1)
    server.mode = "no-topk"
    with pytest.raises(RetrievalError, match=r"without a 'topk' list; it sent: .*index not loaded"):
        ColBERTv2(server.url)("q", k=1)
    server.mode = "400"
    with pytest.raises(RetrievalError, match=r"refused the query \(HTTP 400: 'k must be <= 100'\)") as error:
        ColBERTv2(server.url)("q", k=1)
    assert not isinstance(error.value, RetrieverUnavailable)
    server.mode = "500"
    server.seen.clear()
    with pytest.raises(RetrieverUnavailable, match=r"HTTP 500"):
        ColBERTv2(server.url, num_retries=1)("q", k=1)
    assert len(server.seen) == 2  # a 5xx is retried


def test_a_bad_url_is_a_retrieval_error_not_unavailable():
    with pytest.raises(RetrievalError, match="bad URL") as error:
        ColBERTv2("localhost:8893/wiki17_abstracts")("q", k=1)
    assert not isinstance(error.value, RetrieverUnavailable)
