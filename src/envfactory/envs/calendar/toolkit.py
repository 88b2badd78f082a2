"""A shared office calendar: users, calendars, events with attendees and RSVPs (trusted reference toolkit).

Rules the tools enforce:
- An event belongs to a calendar; the calendar's owner organises it and attends it implicitly.
- Times are timezone-aware ISO 8601; an event ends after it starts and cannot start in the past
  (the session clock decides what "now" is).
- Creating or rescheduling an event refuses a time that overlaps the organiser's other confirmed
  events unless `allow_conflicts` is set. A user is busy during confirmed events they organise or
  attend without having declined.
- Rescheduling asks every attendee to respond again. Cancelled events are kept (with the reason) and
  cannot be changed any more; events that have ended cannot be cancelled.
- Event ids come from the counter `next_event_number` in the state, timestamps from the session clock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from envfactory.runtime.toolkit import Toolkit, tool

Response = Literal["needs_action", "accepted", "declined", "tentative"]
Reply = Literal["accepted", "declined", "tentative"]
EventStatus = Literal["confirmed", "cancelled"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class User(_Record):
    """A person who can own calendars and attend events."""

    id: str = Field(description="user id, e.g. usr_001")
    name: str = Field(min_length=1)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")


class Calendar(_Record):
    """A calendar owned by one user; its events are organised by the owner."""

    id: str = Field(description="calendar id, e.g. cal_001")
    owner_id: str = Field(description="id of the owning user")
    name: str = Field(min_length=1)
    description: str = ""


class Attendee(_Record):
    """An invited user and their answer."""

    user_id: str
    response: Response = "needs_action"


class Event(_Record):
    """A meeting on a calendar."""

    id: str = Field(description="event id, e.g. evt_0001")
    calendar_id: str
    organizer_id: str = Field(description="the calendar owner, who attends implicitly")
    title: str = Field(min_length=1)
    description: str = ""
    location: str = ""
    start: AwareDatetime
    end: AwareDatetime
    attendees: list[Attendee] = Field(default_factory=list, description="invited users besides the organizer")
    status: EventStatus = "confirmed"
    cancellation_reason: str = ""
    created_at: AwareDatetime
    updated_at: AwareDatetime

    def overlaps(self, start: datetime, end: datetime) -> bool:
        """Whether the event's time intersects [`start`, `end`) (touching ends do not overlap)."""
        return self.start < end and start < self.end

    def busy_for(self, user_id: str) -> bool:
        """Whether this event blocks `user_id`'s time."""
        if self.status != "confirmed":
            return False
        if self.organizer_id == user_id:
            return True
        return any(a.user_id == user_id and a.response != "declined" for a in self.attendees)

    def involves(self, user_id: str) -> bool:
        """Whether `user_id` organises the event or is invited to it (whatever their response)."""
        return self.organizer_id == user_id or any(a.user_id == user_id for a in self.attendees)


class CalendarState(_Record):
    """Everything the calendar knows. Collections are keyed by id."""

    users: dict[str, User] = Field(default_factory=dict)
    calendars: dict[str, Calendar] = Field(default_factory=dict)
    events: dict[str, Event] = Field(default_factory=dict)
    next_event_number: int = Field(default=1, ge=1, description="number of the next event id (evt_NNNN)")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        for kind, records in (("user", self.users), ("calendar", self.calendars), ("event", self.events)):
            for key, record in records.items():
                if record.id != key:
                    raise ValueError(f"{kind} stored under {key!r} has id {record.id!r}")
        for owned in self.calendars.values():
            if owned.owner_id not in self.users:
                raise ValueError(f"calendar {owned.id} is owned by unknown user {owned.owner_id}")
        for event in self.events.values():
            calendar = self.calendars.get(event.calendar_id)
            if calendar is None:
                raise ValueError(f"event {event.id} is on unknown calendar {event.calendar_id}")
            if event.organizer_id != calendar.owner_id:
                raise ValueError(
                    f"event {event.id}: organizer {event.organizer_id} does not own {calendar.id}"
                )
            if event.end <= event.start:
                raise ValueError(f"event {event.id} ends before it starts")
            invited = [a.user_id for a in event.attendees]
            if len(set(invited)) != len(invited) or event.organizer_id in invited:
                raise ValueError(f"event {event.id} lists an attendee twice (or the organizer)")
            unknown = [u for u in invited if u not in self.users]
            if unknown:
                raise ValueError(f"event {event.id} invites unknown users {', '.join(unknown)}")
        return self


class CalendarToolkit(Toolkit[CalendarState]):
    """Tools over a `CalendarState`."""

    # -- lookups shared by the tools ------------------------------------------------------------------
    def _user(self, user_id: str, path: str = "/user_id") -> User:
        user = self.state.users.get(user_id)
        if user is None:
            raise self.not_found(f"no user with id {user_id!r}", path)
        return user

    def _event(self, event_id: str) -> Event:
        event = self.state.events.get(event_id)
        if event is None:
            raise self.not_found(f"no event with id {event_id!r}", "/event_id")
        return event

    def _editable(self, event_id: str) -> Event:
        event = self._event(event_id)
        if event.status == "cancelled":
            raise self.rule_violation(f"event {event_id} is cancelled and can no longer be changed")
        return event

    def _check_times(self, start: datetime, end: datetime) -> None:
        if end <= start:
            raise self.invalid_arguments("end must be later than start", "/end")
        if start < self.ctx.now():
            raise self.rule_violation(
                f"cannot schedule an event in the past (it is now {self.ctx.now_iso()})"
            )

    def _conflicts(
        self, user_id: str, start: datetime, end: datetime, ignore: str | None = None
    ) -> list[Event]:
        found = [
            e
            for e in self.state.events.values()
            if e.id != ignore and e.busy_for(user_id) and e.overlaps(start, end)
        ]
        return sorted(found, key=lambda e: (e.start, e.id))

    def _refuse_conflicts(
        self, organizer_id: str, start: datetime, end: datetime, ignore: str | None = None
    ) -> None:
        clashes = self._conflicts(organizer_id, start, end, ignore)
        if clashes:
            listed = ", ".join(f"{e.id} ({e.title})" for e in clashes)
            raise self.rule_violation(
                f"the organizer {organizer_id} is busy then: {listed}; pick another time or set allow_conflicts"
            )

    # -- read tools -----------------------------------------------------------------------------------
    @tool(effect="read")
    def find_users(self, query: str) -> list[User]:
        """Find users whose name or email contains the query (case-insensitive).

        Args:
            query: part of a name or email address, e.g. "grace" or "@example.com".

        Returns:
            matching users, ordered by id.
        """
        needle = query.strip().casefold()
        if not needle:
            raise self.invalid_arguments("query must not be empty", "/query")
        matches = [
            u
            for u in self.state.users.values()
            if needle in u.name.casefold() or needle in u.email.casefold()
        ]
        return sorted(matches, key=lambda u: u.id)

    @tool(effect="read")
    def list_calendars(self, user_id: str) -> list[Calendar]:
        """List the calendars a user owns.

        Args:
            user_id: the owner's user id.

        Returns:
            the user's calendars, ordered by id.
        """
        self._user(user_id)
        return sorted((c for c in self.state.calendars.values() if c.owner_id == user_id), key=lambda c: c.id)

    @tool(effect="read")
    def get_event(self, event_id: str) -> Event:
        """Get one event with its attendees and their responses.

        Args:
            event_id: the event id.
        """
        return self._event(event_id)

    @tool(effect="read")
    def list_events(
        self, user_id: str, start: AwareDatetime, end: AwareDatetime, include_cancelled: bool = False
    ) -> list[Event]:
        """List the events a user organises or is invited to that overlap a time range.

        Args:
            user_id: whose events to list.
            start: beginning of the range (ISO 8601 with timezone).
            end: end of the range, exclusive (ISO 8601 with timezone).
            include_cancelled: also list cancelled events.

        Returns:
            the events, ordered by start time.
        """
        self._user(user_id)
        if end <= start:
            raise self.invalid_arguments("end must be later than start", "/end")
        events = [
            e
            for e in self.state.events.values()
            if e.involves(user_id)
            and e.overlaps(start, end)
            and (include_cancelled or e.status == "confirmed")
        ]
        return sorted(events, key=lambda e: (e.start, e.id))

    @tool(effect="read")
    def find_conflicts(
        self, user_id: str, start: AwareDatetime, end: AwareDatetime, ignore_event_id: str | None = None
    ) -> list[Event]:
        """Find the confirmed events that keep a user busy during a time range.

        A user is busy during events they organise and events they were invited to and have not declined.

        Args:
            user_id: whose availability to check.
            start: beginning of the range (ISO 8601 with timezone).
            end: end of the range, exclusive (ISO 8601 with timezone).
            ignore_event_id: an event to leave out, e.g. the one being rescheduled.

        Returns:
            the conflicting events, ordered by start time; empty when the user is free.
        """
        self._user(user_id)
        if end <= start:
            raise self.invalid_arguments("end must be later than start", "/end")
        return self._conflicts(user_id, start, end, ignore_event_id)

    # -- write tools ----------------------------------------------------------------------------------
    @tool(effect="write")
    def create_event(
        self,
        calendar_id: str,
        title: str,
        start: AwareDatetime,
        end: AwareDatetime,
        attendee_ids: list[str] | None = None,
        description: str = "",
        location: str = "",
        allow_conflicts: bool = False,
    ) -> Event:
        """Create an event on a calendar and invite attendees; the calendar's owner organises it.

        Args:
            calendar_id: the calendar to put the event on.
            title: a short title.
            start: when it starts (ISO 8601 with timezone); not in the past.
            end: when it ends (ISO 8601 with timezone), after start.
            attendee_ids: users to invite besides the organizer.
            description: agenda or notes.
            location: a room or a link.
            allow_conflicts: create it even if the organizer is busy at that time.

        Returns:
            the new event.
        """
        state = self.state
        calendar = state.calendars.get(calendar_id)
        if calendar is None:
            raise self.not_found(f"no calendar with id {calendar_id!r}", "/calendar_id")
        if not title.strip():
            raise self.invalid_arguments("title must not be empty", "/title")
        self._check_times(start, end)
        attendees: list[Attendee] = []
        for index, user_id in enumerate(attendee_ids or []):
            self._user(user_id, f"/attendee_ids/{index}")
            if user_id == calendar.owner_id:
                raise self.invalid_arguments(
                    f"{user_id} organises the event (owns {calendar_id}); leave them out of attendee_ids",
                    f"/attendee_ids/{index}",
                )
            if all(a.user_id != user_id for a in attendees):
                attendees.append(Attendee(user_id=user_id))
        if not allow_conflicts:
            self._refuse_conflicts(calendar.owner_id, start, end)
        number = state.next_event_number
        while f"evt_{number:04d}" in state.events:
            number += 1
        now = self.ctx.now()
        event = Event(
            id=f"evt_{number:04d}",
            calendar_id=calendar_id,
            organizer_id=calendar.owner_id,
            title=title.strip(),
            description=description,
            location=location,
            start=start,
            end=end,
            attendees=attendees,
            created_at=now,
            updated_at=now,
        )
        state.events[event.id] = event
        state.next_event_number = number + 1
        return event

    @tool(effect="write")
    def reschedule_event(
        self, event_id: str, start: AwareDatetime, end: AwareDatetime, allow_conflicts: bool = False
    ) -> Event:
        """Move an event to a new time; every attendee is asked to respond again.

        Args:
            event_id: the event to move.
            start: the new start (ISO 8601 with timezone); not in the past.
            end: the new end (ISO 8601 with timezone), after start.
            allow_conflicts: move it even if the organizer is busy at the new time.

        Returns:
            the updated event.
        """
        event = self._editable(event_id)
        self._check_times(start, end)
        if not allow_conflicts:
            self._refuse_conflicts(event.organizer_id, start, end, ignore=event.id)
        event.start = start
        event.end = end
        for attendee in event.attendees:
            attendee.response = "needs_action"
        event.updated_at = self.ctx.now()
        return event

    @tool(effect="write")
    def cancel_event(self, event_id: str, reason: str = "") -> Event:
        """Cancel an event that has not ended yet; it stays on the calendar marked cancelled.

        Args:
            event_id: the event to cancel.
            reason: why, shown to the attendees.

        Returns:
            the cancelled event.
        """
        event = self._editable(event_id)
        if event.end <= self.ctx.now():
            raise self.rule_violation(f"event {event_id} has already ended and cannot be cancelled")
        event.status = "cancelled"
        event.cancellation_reason = reason
        event.updated_at = self.ctx.now()
        return event

    @tool(effect="write", idempotent=True)
    def respond_to_event(self, event_id: str, user_id: str, response: Reply) -> Event:
        """Record an invited user's answer to an event invitation.

        Args:
            event_id: the event.
            user_id: the invited user who answers.
            response: accepted, declined or tentative.

        Returns:
            the event with the updated response.
        """
        event = self._editable(event_id)
        self._user(user_id)
        if user_id == event.organizer_id:
            raise self.rule_violation(f"{user_id} organises {event_id}; the organizer does not respond")
        for attendee in event.attendees:
            if attendee.user_id == user_id:
                if attendee.response != response:
                    attendee.response = response
                    event.updated_at = self.ctx.now()
                return event
        raise self.rule_violation(f"{user_id} is not invited to {event_id}; add them as an attendee first")

    @tool(effect="write", idempotent=True)
    def add_attendees(self, event_id: str, user_ids: list[str]) -> Event:
        """Invite more users to an event; users already invited are left as they are.

        Args:
            event_id: the event.
            user_ids: the users to invite.

        Returns:
            the event with its attendees.
        """
        event = self._editable(event_id)
        if not user_ids:
            raise self.invalid_arguments("user_ids must name at least one user", "/user_ids")
        changed = False
        for index, user_id in enumerate(user_ids):
            self._user(user_id, f"/user_ids/{index}")
            if user_id == event.organizer_id:
                raise self.invalid_arguments(f"{user_id} organises {event_id} already", f"/user_ids/{index}")
            if all(a.user_id != user_id for a in event.attendees):
                event.attendees.append(Attendee(user_id=user_id))
                changed = True
        if changed:
            event.updated_at = self.ctx.now()
        return event
