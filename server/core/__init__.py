"""Shared plumbing every room may use: configuration, the database thread, the domain errors,
logs, units of money and time, jobs, rate limits, input validation, the bonus bound."""
