"""Persistence: engine/session helpers, the ORM models and the migrations."""
