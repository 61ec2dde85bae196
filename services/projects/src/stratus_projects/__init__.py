"""The projects service: projects, their team access, and (in `environments`) their environments
and variables."""
