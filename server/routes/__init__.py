"""HTTP and WebSocket handlers, one module per domain; each has setup(app). Handlers stay
thin: read the request, call the domain, shape the answer."""
