import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests' own helpers (helpers.py, reference.py)


def pytest_collection_finish(session):
    """Start the real-loop runs (tests/test_trainer_e2e.py) as soon as they are selected: about nine minutes of
    trainer runs that would otherwise wait for every other test, which mostly keep one core busy."""
    item = next((i for i in session.items if i.path.name == "test_trainer_e2e.py"), None)
    if item is not None:
        futures = item.module.start(session.config._tmp_path_factory)
        session.config.add_cleanup(lambda: [f.cancel() for f in futures.values()])  # on Ctrl-C: no new run
