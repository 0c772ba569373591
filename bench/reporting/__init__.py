"""Scoring, the tidy results table, leaderboards and figures.

Every number here comes from :mod:`bench.metrics`; every table format is rendered
from the tidy table.
"""


def fit_job_method(method: str) -> str:
    """The method of the fit job a run comes from: ``coop+dor+ts`` -> ``coop+dor``.

    Falls back to the part before the first ``+`` for names the registry does not know
    (runs of a method since removed), so reporting on an old results tree still works.
    """
    from bench.methods import fit_stem
    from bench.registry import UnknownNameError

    try:
        return fit_stem(method)
    except (UnknownNameError, ValueError):
        return method.split("+")[0]
