"""`train`: adapters that plug envfactory environments and rewards into TRL and veRL.

There is no trainer of our own; this layer only shapes environments, tools and rewards for theirs.
"""
