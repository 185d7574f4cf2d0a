"""Server-sent events and the one Responses stream grammar."""
