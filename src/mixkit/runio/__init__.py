"""A run's input and output, around the engine: the run directory (``rundir``: its files, lock
and replacement rules), crash-safe writes (``files``), the live view (``progress``), the
standard callbacks that connect the engine's events to them (``callbacks``: the progress view,
``metrics.jsonl``, the non-finite guard, stop-on-signal, the checkpoint saver) and the
experiment loggers (``loggers``: TensorBoard, W&B).

The engine never imports this package (it fires events; these callbacks act on them), and
this package knows no method and no command (``tests/test_layers.py``).
"""
