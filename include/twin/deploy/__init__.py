"""deploy stage of TwinOps."""
