"""The conversations and logs pages' parts: state, queries, take over and resume, logs."""
