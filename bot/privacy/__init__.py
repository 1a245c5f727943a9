"""Residents' personal data: masking where it leaves the service (`masking`),
keeping it only as long as needed (`retention`), residents' own rights (`rights`).

What may be published about a ticket is bot.tickets.publication's; who opened
what is bot.access_log's.
"""
