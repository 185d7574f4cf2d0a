"""The HTTP proxy: an ASGI skin over the Relay."""
