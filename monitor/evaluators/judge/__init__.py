"""LLM-as-judge through any OpenAI-compatible endpoint (vLLM, Ollama, a hosted API, `driftloop serve-model`)."""
