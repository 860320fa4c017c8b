"""What workflows ask of the outside world, grouped by the system each touches."""
