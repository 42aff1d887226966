"""The OpenAI-compatible model server and its in-process model cache."""
