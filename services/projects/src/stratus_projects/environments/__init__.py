"""Environments of a project, their versioned and encrypted variables, and secret reveals: a
resource that grew inside the projects service, with its own domain, handlers, views and read
model (they share the projects partitions, so a project and its default environments commit
together)."""
