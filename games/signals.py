"""Signals of the match lifecycle.

match_finished(sender=Match, match=<Match>) is sent inside the transaction that records the result, once per match:
a receiver's writes (ratings, say) commit together with the result or not at all.

match_cancelled(sender=Match, match_id=<int>) is sent inside the transaction that cancels a match, once per match.

match_created(sender=Match, match=<Match>, users=[<User>...], invited_by=<User>|None) is sent inside the transaction
that creates a match one at a time (match_create: lobbies, invitations, the admin); the matchmaker's bulk creation
sends none, its tickets say where the match is (lobby/services.py, ticket.update).
"""

from django.dispatch import Signal

match_finished = Signal()
match_cancelled = Signal()
match_created = Signal()
