"""The HTTP API: routers, request/response schemas, auth, webhooks and pages."""
