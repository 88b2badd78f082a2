"""Injected sources of time, ids and randomness for one session (DESIGN §3: tools are deterministic
functions of state and arguments; everything else comes from here).

- The clock is stepped, not wall time: `now()` is `start + step * tick`, where `step` is the number of
  calls the session has executed, so replaying the same calls gives the same timestamps.
- Randomness is a private `random.Random` seeded from the session seed (never the global RNG).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

DEFAULT_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ClockConfig:
    """The session clock: the first moment and how far it moves per step."""
    start: datetime = DEFAULT_EPOCH
    tick: timedelta = timedelta(seconds=1)

    def format(self, step: int) -> str:
        """ISO-8601 UTC text of `start + step * tick`, to the second."""
        moment = self.start + self.tick * step
        return moment.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


class CallContext:
    """What an implementation may use besides state and arguments during one call."""

    __slots__ = ("_clock", "_iso", "_rng", "_seed", "step")

    def __init__(self, seed: int, clock: ClockConfig, step: int = 0, rng: random.Random | None = None) -> None:
        """Sources for a session seeded with `seed` on `clock`, at clock `step`; `rng` continues an existing
        RNG (forks), else one is made from `seed` on first use."""
        self._seed = seed
        self._clock = clock
        self._rng = rng
        self.step = step
        self._iso: tuple[int, str] = (-1, "")

    @property
    def seed(self) -> int:
        """The session's seed."""
        return self._seed

    @property
    def clock(self) -> ClockConfig:
        """The session's clock configuration."""
        return self._clock

    def now(self) -> datetime:
        """The simulated time: `clock.start + step * clock.tick` (never the wall clock)."""
        return self._clock.start + self._clock.tick * self.step

    def now_iso(self) -> str:
        """`now()` as `YYYY-MM-DDTHH:MM:SSZ` (cached per clock step: formatting costs more than a call)."""
        step, text = self._iso
        if step != self.step:
            text = self._clock.format(self.step)
            self._iso = (self.step, text)
        return text

    @property
    def rng(self) -> random.Random:
        """The session's seeded RNG, created on first use so sessions that never draw pay nothing."""
        if self._rng is None:
            self._rng = random.Random(self._seed)
        return self._rng

    def rng_state(self) -> object | None:
        """An opaque checkpoint of the RNG (None while no tool has drawn)."""
        return self._rng.getstate() if self._rng is not None else None

    def rollback_rng(self, checkpoint: object | None) -> None:
        """Undo draws made since `checkpoint`: failed calls and reads must not move the RNG, so that
        replaying a session's successful writes reproduces its state."""
        if checkpoint is None:
            self._rng = None
        elif self._rng is not None:
            self._rng.setstate(checkpoint)  # type: ignore[arg-type]

    def fork(self) -> CallContext:
        """An independent copy at the same step, with the RNG's state copied."""
        rng = None
        if self._rng is not None:
            rng = random.Random()
            rng.setstate(self._rng.getstate())
        return CallContext(self._seed, self._clock, self.step, rng)
