"""Replies to calls run ahead (`SandboxBackend.plan`, protocol `CallAhead`): what the parent keeps of a
`CalledAhead` reply, and when a later call may use one.

A reply run ahead was computed on the state the calls before it left, assuming each of their writes
commits. It may stand for a later call only when that call is exactly the one planned (tool and argument
bytes) and is made on exactly that state (its hash), at that step, with that seed and clock, with no RNG
drawn, in the same worker generation (`Ahead.fits`).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

from envfactory.runtime.sandbox.process import WorkerLost
from envfactory.runtime.sandbox.protocol import AheadItem, Call, Called, CalledAhead, Failed
from envfactory.runtime.sources import CallContext


@dataclass(frozen=True, slots=True)
class Ahead:
    """The worker's reply to one call run ahead and what the call must be to use it: the worker generation,
    the state hash it ran on, tool and argument bytes, and the call as the worker ran it (step, seed, clock)."""

    epoch: int
    before: str
    tool: str
    arguments: bytes
    call: Call
    reply: Called | Failed
    payload: bytes

    def fits(self, epoch: int, state_hash: str, tool: str, arguments: bytes, ctx: CallContext,
             clock: tuple[str, int]) -> bool:
        """Whether this reply is the one a call of `tool` with `arguments` on a state hashing to `state_hash`,
        with `ctx` (whose clock travels as `clock`), in worker generation `epoch` would get."""
        call = self.call
        return (self.epoch == epoch and self.before == state_hash and self.tool == tool and self.arguments == arguments
                and call.step == ctx.step and call.seed == ctx.seed and ctx.rng_state() is None
                and clock == (call.clock_start, call.clock_tick_us))


def split_replies(
    epoch: int, call: Call, rest: list[tuple[str, bytes]], items: tuple[AheadItem, ...], reply: CalledAhead,
    payload: bytes,
) -> tuple[Called | Failed, bytes, collections.deque[Ahead]]:
    """The first call's reply and body, and the replies of the calls after it as `Ahead`s, in order (each
    with the state hash and step it ran on: the previous write's, else the one before). Raises `WorkerLost`
    for a reply whose parts do not add up."""
    if not reply.replies or len(reply.sizes) != len(reply.replies) or sum(reply.sizes) != len(payload):
        raise WorkerLost("sandbox_failure", "broke the protocol (a malformed reply to calls ahead)")
    bodies, offset = [], 0
    for size in reply.sizes:
        bodies.append(payload[offset : offset + size])
        offset += size
    kept: collections.deque[Ahead] = collections.deque()
    before, step = call.expect, call.step
    previous = reply.replies[0]
    for (tool, arguments), item, answer, body in zip(rest, items, reply.replies[1:], bodies[1:], strict=False):
        if isinstance(previous, Called) and previous.writes and previous.hash is not None:
            before, step = previous.hash, step + 1
        ahead_call = Call(seq=call.seq, handle=call.handle, token=item.token, expect=before, tool=tool,
                          seed=call.seed, step=step, clock_start=call.clock_start, clock_tick_us=call.clock_tick_us)
        kept.append(Ahead(epoch, before, tool, arguments, ahead_call, answer, body))
        previous = answer
    return reply.replies[0], bodies[0], kept
