"""Shared plumbing every room may use: configuration, the database thread, errors,
logs, units of money and time, jobs, rate limits, input validation, metrics."""
