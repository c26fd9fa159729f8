"""store stage of TwinOps."""
