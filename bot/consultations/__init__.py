"""Residents deciding together (协商议事): consultations of a grid or a building.

`service` (make, answer, count, close), `answers` (reading an answer out of a chat
message), `notices` (what residents are told, through bot.notify's outbox).
"""
