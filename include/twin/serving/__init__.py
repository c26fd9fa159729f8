"""serving stage of TwinOps."""
