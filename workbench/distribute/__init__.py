"""Distribution: the signed TUF update repository, its HTTP server, tower tokens, the fleet and the tower agent."""
