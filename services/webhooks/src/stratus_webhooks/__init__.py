"""Webhooks: signed delivery of platform events to customer endpoints, behind an SSRF guard."""
