"""Human tasks and Part 11 electronic signatures, shared by every regulated process."""
