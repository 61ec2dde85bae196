"""Stratus contracts: every message that crosses a process boundary, and the subjects it travels on."""
