"""Training: the loop (``loop.train``), its options (``config.TrainConfig``), the run folder
and the weight average."""
