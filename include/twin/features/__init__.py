"""features stage of TwinOps."""
