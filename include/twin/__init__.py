"""TwinOps: turn an author's public writing into an LLM Twin."""

__version__ = "0.1.0"
