"""The pure domain: aggregates, events, the lifecycle, money and the policy model.

Nothing here performs I/O or reads a clock; `now` always arrives as an argument.
"""
