"""Entry point: `python -m stratus_projects` runs one replica of the projects service."""

from stratus_bus.runtime import run
from stratus_projects.bootstrap import setup

if __name__ == "__main__":
    run("projects", setup)
