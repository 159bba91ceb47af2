"""The economy around calls: tips, top-up bonuses and promotions, the buyer's own controls
(spending limits, self-exclusion, leaderboard opt-in, sign-up consents) and seller stats.
Pure rules in `rules.py`; one module per domain beside it (`bonuses`, `promotions`, `limits`,
`tips`, `stats`, `consents`); the endpoints in `routes.py`."""
