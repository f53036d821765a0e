"""Training: data preparation (prepare, prepared), pairs dataset, losses, the DDP trainer, a throughput bench.

Imported only by the CLI (floor 2: it uses model/ and face/ below it, nothing above).
"""
