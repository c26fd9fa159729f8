"""domain stage of TwinOps."""
