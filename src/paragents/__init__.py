"""paragents."""
