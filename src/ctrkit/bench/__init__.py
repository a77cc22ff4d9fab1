"""Benchmark suites: expand a suite YAML into runs, execute them in worker processes with explicit
thread budgets, record every finished run in a results database (SQLite by default, any SQLAlchemy URL), and write a leaderboard.

* :mod:`ctrkit.bench.suite` -- suite YAML -> runs (dataset x model x grid point x seed), stable ids
* :mod:`ctrkit.bench.runner` -- workers, thread budgets, progress, resume
* :mod:`ctrkit.bench.db` -- the results database (SQLAlchemy; SQLite by default)
* :mod:`ctrkit.bench.report` -- ``leaderboard.md``
* :mod:`ctrkit.bench.stats` -- t intervals and paired t-tests without scipy
"""

from __future__ import annotations

from ctrkit.bench.suite import RunSpec, Suite, load_suite

__all__ = ["RunSpec", "Suite", "load_suite"]
