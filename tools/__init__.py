"""Operator and test tools: a WebRTC peer (tools.peer) that talks to a meterchat server
through its public HTTP and WebSocket API."""
