"""Calls: live time (live.py), their SQL (store.py), the call manager (manager.py), the socket
hub (signalling.py) and /ws (ws.py), ICE servers (ice.py), the call endpoints (routes.py)."""
