"""meterchat: pay-per-minute 1-on-1 video chat paid in USDT on TRON."""
