"""Signals of the match lifecycle.

match_finished(sender=Match, match=<Match>) is sent inside the transaction that records the result, once per match:
a receiver's writes (ratings, say) commit together with the result or not at all.
"""

from django.dispatch import Signal

match_finished = Signal()
