"""Remote MCP tools (`"type": "mcp"`) run by llmrelay for providers that cannot run them.

servers.py resolves a request's MCP tools against the servers a relay may reach; client.py
talks to a server with the `mcp` SDK (an extra: `llmrelay[mcp]`); loop.py runs the tool loop
around single upstream rounds; replay.py turns MCP items into plain function-call items.
Nothing here imports the `mcp` SDK until a server is actually called.
"""

from .servers import McpPolicy, McpServer, Plan, plan_for

__all__ = ["McpPolicy", "McpServer", "Plan", "plan_for"]
