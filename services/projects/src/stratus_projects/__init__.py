"""The projects service: owns projects, their event log and their list view."""
