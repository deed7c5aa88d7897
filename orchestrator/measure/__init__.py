"""What a run measured: the typed observation (observation.py), the metrics computed from it
(metrics.py; the registry itself is in spec), the expectations checked against them and the
verdict (expect.py), and the result object every report reads (result.py)."""
