"""Tree search over actions: the search as a Solver, its strategies, tree, value function and final selection."""
