"""Tests of the Python SDK (clients/python) against a running stack."""
