"""Mail: the outbox (written in the transaction of the change that causes a mail), the
messages, and the job that sends them over SMTP with retries."""
