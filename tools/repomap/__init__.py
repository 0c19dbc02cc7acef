"""The repository map: tree-sitter tags, a ranked reference graph, fitted to a token budget."""
