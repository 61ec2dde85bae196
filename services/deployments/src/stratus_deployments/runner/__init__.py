"""Runners: what builds and serves a deployment (`base.Runner`), and the local one."""
