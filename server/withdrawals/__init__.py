"""Withdrawal requests and the exactly-once sender."""
