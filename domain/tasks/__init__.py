"""Human tasks (one inbox: claim, delegation, out-of-office deputies, reminder digests) and Part 11
electronic signatures, shared by every regulated process."""
