"""Shared pieces of the project: the MXNet import, command-line plumbing, training."""
