"""Calls: live time, the call manager, signalling over /ws, ICE servers."""
