"""collections-es: an event-sourced accounts-receivable collection service."""

__version__ = "0.1.0"
