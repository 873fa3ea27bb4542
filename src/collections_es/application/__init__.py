"""The application layer: use cases over the domain, the clock, access rules."""
