"""The browser client's files, health, OpenAPI description."""
