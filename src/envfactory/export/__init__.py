"""`export`: pure converters from tasks and trajectories (`spec`) to SFT and RL dataset formats.

Nothing here runs an environment or a model; every function maps typed artifacts to rows.
"""
