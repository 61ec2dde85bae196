"""Deployments: the runner against real git repositories, processes and HTTP."""
