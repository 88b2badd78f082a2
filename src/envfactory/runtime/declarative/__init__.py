"""The declarative engine: environments described as data, executed by trusted code."""

from envfactory.runtime.declarative.compile import compile_source
from envfactory.runtime.declarative.engine import DeclarativeBackend
from envfactory.runtime.declarative.records import RecordStore

__all__ = ["DeclarativeBackend", "RecordStore", "compile_source"]
