"""ml_collections configs; `get_config(arg)` in each file, `:tiny` for tests."""
