"""datasets stage of TwinOps."""
