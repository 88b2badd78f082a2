"""`exec`: where independent work items run — serially, on a local process pool, or on Ray.

Items carry only what they need (paths, seeds, configs) and results come back as typed artifacts.
"""
