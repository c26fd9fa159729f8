"""crawl stage of TwinOps."""
