"""Scoring, the tidy results table, leaderboards and figures.

Every number here comes from :mod:`bench.metrics`; every table format is rendered
from the tidy table.
"""
