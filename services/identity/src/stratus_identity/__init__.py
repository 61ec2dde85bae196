"""The identity service: accounts and API keys, verified by hash."""
