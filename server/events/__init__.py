"""Operator events: the durable outbox of events (`outbox.py`), their delivery to signed
webhooks (`webhooks.py`, the job in `sender.py`), the alert mails (`alerts.py`), the pure
rules (`rules.py`) and the operator's endpoints (`routes.py`)."""
