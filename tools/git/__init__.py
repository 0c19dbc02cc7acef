"""Git for the agent and the user: read-only tools, the end-of-run commit, isolation of host-side git."""
