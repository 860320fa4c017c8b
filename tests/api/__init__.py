"""API tests: routes, access, schemas."""
