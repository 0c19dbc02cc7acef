"""A tiny stock-keeping tool used by the branchwise planner demo."""
