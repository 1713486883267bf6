"""The LLM gateway: every call to a language model, with retries, fallback models, streaming,
tool calls, usage and cost recorded per call, and each organization's monthly budget."""
