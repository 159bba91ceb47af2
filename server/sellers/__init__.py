"""Seller profiles, presence, blocks and the sellers listing."""
