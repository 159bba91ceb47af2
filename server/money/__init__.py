"""The ledger (the only writer of postings and balances) and call billing."""
