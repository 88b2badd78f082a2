"""envfactory: stateful, executable, verified tool environments for training tool-using agents.

Nothing happens at import time; import the layer you need (`envfactory.spec`, `envfactory.runtime`, ...).
"""

__version__ = "0.1.0"
