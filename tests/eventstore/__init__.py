"""Stratus tests."""
