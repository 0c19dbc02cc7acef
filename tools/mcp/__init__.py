"""MCP: other tools' servers as branchwise tools, run inside the session's sandbox and under its policy.

`manager.McpManager` is the entry point; nothing here imports the `mcp` SDK until a server is configured."""
