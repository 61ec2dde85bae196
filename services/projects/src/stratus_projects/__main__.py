"""Entry point: `python -m stratus_projects` runs one replica of the projects service."""

from stratus_kit import run
from stratus_projects.bootstrap import SERVICE

if __name__ == "__main__":
    run(SERVICE)
