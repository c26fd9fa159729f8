"""rag stage of TwinOps."""
