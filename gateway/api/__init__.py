"""The REST API: routes per resource, named dependencies, and the role table."""
