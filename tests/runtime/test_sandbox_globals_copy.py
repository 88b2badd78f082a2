"""Per-session module globals (`runtime.sandbox.isolation.SessionGlobals`) share what cannot change in place
(issue 18, speed: a new session's namespace no longer deep-copies immutable values) and still give every
session its own copy of anything mutable, also inside a tuple."""

from __future__ import annotations

import types
import typing

from envfactory.runtime.sandbox.isolation import SessionGlobals


def _module() -> types.ModuleType:
    module = types.ModuleType("toolkit_under_test")
    exec(  # a toolkit module's globals, defined in place
        "import typing\n"
        "LIMITS = (1, 2.5, 'three', None, frozenset({4}))\n"
        "KINDS = {'number': int | float, 'mapping': dict[str, typing.Any], 'either': typing.Union[int, str]}\n"
        "SEEN = ([], 'tag')\n"
        "COUNTS = {'calls': 0}\n",
        vars(module),
    )
    return module


def test_immutable_globals_are_shared_and_mutable_ones_copied_per_session() -> None:
    module = _module()
    limits, kinds, seen = module.LIMITS, module.KINDS, module.SEEN
    spaces = SessionGlobals(module)
    spaces.enter(1)
    assert module.LIMITS is limits  # nothing in it can change
    assert module.KINDS is not kinds and kinds == module.KINDS  # a dict is copied, whatever it holds
    assert module.SEEN is not seen and module.SEEN[0] is not seen[0]  # a list inside a tuple is copied
    module.SEEN[0].append("first session")
    module.COUNTS["calls"] += 1
    spaces.enter(2)
    assert module.SEEN == ([], "tag") and module.COUNTS == {"calls": 0}
    module.COUNTS["calls"] += 5
    spaces.enter(1)
    assert module.SEEN == (["first session"], "tag") and module.COUNTS == {"calls": 1}
    assert seen == ([], "tag")  # the pristine namespace is untouched
    assert typing.get_args(module.KINDS["either"]) == (int, str)
