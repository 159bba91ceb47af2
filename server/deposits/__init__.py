"""Top-ups: intents, crediting transfers, the watcher, claims."""
