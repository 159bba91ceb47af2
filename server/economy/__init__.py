"""Tips, bonuses, promotions, spending limits, seller stats."""
