"""Users, passwords, sessions and the auth endpoints."""
