"""The `stratus` command line: `stratus up` runs the whole stack locally, other commands operate it."""
