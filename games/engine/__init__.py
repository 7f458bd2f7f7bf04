"""The match engine: authoritative tick loops, their ownership across processes, and the wire protocol."""
