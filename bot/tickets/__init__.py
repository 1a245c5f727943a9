"""Tickets: the state machine (state.py) and the service API (service.py)."""
