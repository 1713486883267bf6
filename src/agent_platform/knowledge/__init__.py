"""The knowledge base: documents split into searchable chunks, FAQ pairs, and the answer
context the agent replies from."""
