"""The soak run's parts (`bench/soak.py` is the command): the deployment it starts
(`topology.py`), the load (`load.py`), the faults (`faults.py`), the accounting of every request
(`ledger.py`) and the report (`report.py`). docs/soak.md describes the run."""
