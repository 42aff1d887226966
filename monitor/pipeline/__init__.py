"""The metrics pipeline: windows and segments, embeddings, metric rows, and the jobs that fill them."""
