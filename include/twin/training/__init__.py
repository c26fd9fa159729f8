"""training stage of TwinOps."""
