"""Retrievers: BM25 (bm25s), embeddings (any embedder), and a ColBERTv2 server client.

Heavy libraries (bm25s, numpy, httpx) are imported only when a retriever is built or used.
"""

from promptless.retrieve.base import Passage, RetrievalError, Retriever, RetrieverUnavailable
from promptless.retrieve.bm25 import BM25Retriever
from promptless.retrieve.colbert import ColBERTv2
from promptless.retrieve.embeddings import EmbeddingsRetriever

__all__ = [
    "BM25Retriever",
    "ColBERTv2",
    "EmbeddingsRetriever",
    "Passage",
    "RetrievalError",
    "Retriever",
    "RetrieverUnavailable",
]
