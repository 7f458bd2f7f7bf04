"""Lobbies, matchmaking, ratings and their API and consumers."""
