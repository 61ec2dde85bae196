"""`python -m stratus_deployments`: run the deployments service."""

from stratus_deployments.bootstrap import SERVICE
from stratus_kit import run

if __name__ == "__main__":
    run(SERVICE)
