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


def test_a_new_session_gets_the_pristine_module_even_after_others_changed_module_and_classes() -> None:
    module = types.ModuleType("toolkit_with_classes")
    exec(
        "FLAGS = {'mode': 'fast', 'kinds': (int, str)}\n"
        "NESTED = {'seen': []}\n"
        "SHARED = []\n"
        "ALIAS = {'a': SHARED, 'b': SHARED}\n"
        "class Plain:\n"
        "    def method(self):\n"
        "        return 1\n"
        "class Counted:\n"
        "    calls = 0\n",
        vars(module),
    )
    module.__name__ = "toolkit_with_classes"
    for cls in (module.Plain, module.Counted):
        cls.__module__ = "toolkit_with_classes"
    flags = module.FLAGS
    spaces = SessionGlobals(module)
    spaces.enter(1)
    assert flags == module.FLAGS and module.FLAGS is not flags and module.FLAGS["kinds"] is flags["kinds"]
    assert module.ALIAS["a"] is module.ALIAS["b"] is module.SHARED  # one copy for one object, as a deep copy
    module.FLAGS["mode"] = "slow"
    module.NESTED["seen"].append(1)
    module.Plain.added = ["data"]  # data set on a class that had none
    module.Counted.calls = 7
    spaces.enter(2)
    assert {"mode": "fast", "kinds": (int, str)} == module.FLAGS and module.NESTED == {"seen": []}
    assert not hasattr(module.Plain, "added") and module.Counted.calls == 0
    assert callable(module.Plain.method)
    module.SHARED.append("second")
    spaces.enter(1)
    assert module.FLAGS["mode"] == "slow" and module.NESTED == {"seen": [1]}
    assert module.Plain.added == ["data"] and module.Counted.calls == 7 and module.SHARED == []
    spaces.drop(1)
    spaces.enter(3)
    assert module.FLAGS["mode"] == "fast" and not hasattr(module.Plain, "added") and callable(module.Plain.method)
    assert flags == {"mode": "fast", "kinds": (int, str)}  # the module's own objects were never changed
