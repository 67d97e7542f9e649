"""Training a network of ``symbols`` on ``data``: flags, devices and kvstore, the Module,
the epoch loop with exact resume, evaluation, the benchmark, checkpoints, export, and the
distributed launcher."""
