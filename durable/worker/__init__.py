"""The executor: claiming runs, driving their workflow code, committing their history."""
