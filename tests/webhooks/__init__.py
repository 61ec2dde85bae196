"""Webhooks: signing and the SSRF guard, the pure parts of the webhooks service."""
