"""Disputes, moderation, the audit log, reconciliation, held earnings, backups."""
