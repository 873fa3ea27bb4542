"""Adapters: persistence wiring, policy files, and (later) notification senders."""
