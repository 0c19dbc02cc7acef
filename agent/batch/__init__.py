"""Many runs: task discovery, a private copy of the repository per task, a Ray runner, results and budgets."""
