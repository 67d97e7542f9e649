"""The ground floor every package stands on: the one MXNet import, command-line plumbing,
atomic files and locks, the CPU."""
