"""`runtime.WriteDiffs`: the state diff of every call that changed state, recorded as the calls run
(bundled `tracker` environment)."""

from __future__ import annotations

from envfactory.runtime import WriteDiffs, load_env, open_group
from envfactory.spec import CallStateDiff, Trajectory

STATUS = "tracker__set_task_status"
GET = "tracker__get_task"


def _first_task() -> str:
    return sorted(load_env("tracker").default_state()["collections"]["tasks"])[0]


def test_a_write_gets_its_diff_and_a_read_none() -> None:
    task_id = _first_task()
    with open_group([load_env("tracker")], {}, seed=0) as group:
        before = group.sessions["tracker"].state_json()["collections"]["tasks"][task_id]
        writes = WriteDiffs(group)
        read, none = writes.call(GET, {"id": task_id})
        assert read.ok and none is None
        result, diff = writes.call(STATUS, {"id": task_id, "status": "in_review"})
        assert result.ok and isinstance(diff, CallStateDiff)
        assert diff.call_id == result.call_id == group.log[-1][0].id and diff.env == "tracker"
        status = [c for c in diff.changes if c.path == f"/collections/tasks/{task_id}/status"]
        assert len(status) == 1 and status[0].op == "replace"
        assert (status[0].old, status[0].new) == (before["status"], "in_review")
        # the diff is exactly what turns the state before into the state after
        after = group.sessions["tracker"].state_json()["collections"]["tasks"][task_id]
        assert {c.path.rsplit("/", 1)[-1] for c in diff.changes if c.path.startswith(f"/collections/tasks/{task_id}/")} \
            == {k for k in after if after[k] != before.get(k)}
        again, stamp = writes.call(STATUS, {"id": task_id, "status": "in_review"})  # the status is set already
        assert again.ok and stamp is not None  # so only the update time moved, from the state after the first write
        assert [(c.path, c.old) for c in stamp.changes] == [(f"/collections/tasks/{task_id}/updated_at", after["updated_at"])]
        writes.close()


def test_failed_and_unknown_calls_record_nothing() -> None:
    with open_group([load_env("tracker")], {}, seed=0) as group:
        writes = WriteDiffs(group)
        failed, none = writes.call(STATUS, {"id": "no-such-task", "status": "in_review"})
        assert failed.error is not None and none is None
        unknown, nothing = writes.call("tracker__no_such_tool", {})
        assert unknown.error is not None and unknown.error.kind == "unknown_tool" and nothing is None


def test_a_change_made_outside_is_not_blamed_on_the_next_call() -> None:
    first, second = sorted(load_env("tracker").default_state()["collections"]["tasks"])[:2]
    with open_group([load_env("tracker")], {}, seed=0) as group:
        writes = WriteDiffs(group)
        writes.call(GET, {"id": first})  # the recorder keeps the state before the next call
        assert group.call(STATUS, {"id": first, "status": "blocked"}).ok  # e.g. a user-only tool, not recorded
        result, diff = writes.call(STATUS, {"id": second, "status": "blocked"})
        assert result.ok and diff is not None
        assert all(f"/{first}" not in c.path for c in diff.changes)
        assert any(c.path == f"/collections/tasks/{second}/status" for c in diff.changes)


def test_a_trajectory_without_diffs_keeps_its_bytes() -> None:
    from envfactory.spec import EnvRef, StateChange, TerminationReason

    plain = Trajectory(id="t", envs=[EnvRef(name="tracker", version="1")], seed=0, messages=[],
                       termination=TerminationReason.AGENT_STOP)
    assert b"state_diffs" not in plain.to_json_bytes()  # what trajectories recorded before the field hold
    assert Trajectory.model_validate_json(plain.to_json_bytes()) == plain
    change = StateChange(op="add", path="/collections/tasks/t9", new={"id": "t9"})
    written = plain.model_copy(update={"state_diffs": [CallStateDiff(call_id="call_0", env="tracker", changes=[change])]})
    assert Trajectory.model_validate_json(written.to_json_bytes()) == written
