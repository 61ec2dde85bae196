"""`python -m stratus_webhooks`: run the webhooks service."""

from stratus_kit import run
from stratus_webhooks.bootstrap import SERVICE

if __name__ == "__main__":
    run(SERVICE)
