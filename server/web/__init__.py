"""The web face that belongs to no domain: the browser client's files and security headers,
health, metrics, the OpenAPI description."""
