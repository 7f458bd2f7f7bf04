"""Games: pure rules, the match engine, and match WebSocket sessions."""
