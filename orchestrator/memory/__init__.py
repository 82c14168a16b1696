"""Shared memory and retrieval: embeddings, the persistent searchable store behind workflows,
and document corpora that specialists retrieve from."""
