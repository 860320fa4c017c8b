"""Recalls: the record, its frozen scope, notices with their receipt events, and responses."""
