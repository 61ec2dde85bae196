"""Deployments: builds a project at a git ref and serves it as an environment, with its logs."""
