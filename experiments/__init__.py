"""The paper's experiments: analyses and runners built on ``symbols`` and the trainers."""
