"""ops stage of TwinOps."""
