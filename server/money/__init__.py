"""The ledger (the only writer of postings and balances), the rules of billing a call, and
the billing pass."""
