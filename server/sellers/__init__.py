"""Sellers: profile rules, profiles and presence, the listing, blocks and reports between
users, and their endpoints."""
