"""Accounts: sign-up rules, users, password hashes, sessions, who is asking (auth) and the
sign-up and login endpoints."""
