"""Prompt texts of the agent loop and the user simulator.

They are constants (not package data files) so the agent layer needs no packaging change; `prompt_hash`
hashes all of them for run manifests. Placeholders are `str.format` fields; literal braces are doubled.

Shape (for prefix reuse): the system message holds only what stays the same over an episode's requests
(`AGENT_SYSTEM`, `POLICY`, `CATALOGUE`; `USER_SYSTEM`), the conversation follows, and what varies per
request closes the prompt as a final system note (`DECIDE`, `ARGUMENTS`; `USER_OPENING`, `USER_STOP_RULE`).
"""

from __future__ import annotations

from envfactory.spec import sha256_hex

AGENT_SYSTEM = (
    "You are an assistant that completes the user's requests by calling tools. "
    "Call one tool at a time and read its result before deciding what to do next. "
    "Use only values the user gave or that earlier tool results returned. "
    "When the request is done, or you need something from the user, answer in plain words."
)

POLICY = "Follow this policy:\n{policy}"

CATALOGUE = "Tools you can call now (name: what it does):\n{catalogue}"

DECIDE = (
    "Decide the next step. Reply with JSON only: {{\"next\": \"<tool name>\"}} to call a tool, or "
    "{{\"next\": \"answer\", \"message\": \"<your reply to the user>\"}} when no tool call is needed."
)

ARGUMENTS = "Call {tool} now. Fill its arguments from the conversation."

USER_SYSTEM = (
    "You are a customer talking to a support agent. Play this customer; never act as the agent.\n\n"
    "Your goal:\n{instructions}\n\n"
    "What you know (share it only when the agent asks for it):\n{known_info}\n\n"
    "Your manner: {persona}\n\n"
    "Write one short message at a time, in the first person. Do not invent facts you were not given."
)

USER_STOP_RULE = "When your goal is reached, or it cannot be reached, reply with exactly {stop}."

# Added to the simulator's system text only when it has user-side tools (τ² telecom).
USER_TOOLS = (
    "You have your own tools (your phone, your account): call one when the agent asks you to do or check "
    "something on your side, then tell the agent what it showed. Never make up a tool's result."
)

USER_OPENING = "Start now: tell the agent, in one or two sentences, what you need."

USER_GREETING = "Hi! How can I help you today?"


def prompt_hash() -> str:
    """sha256 over every text of this module (for run manifests and cache invalidation)."""
    texts = (AGENT_SYSTEM, POLICY, CATALOGUE, DECIDE, ARGUMENTS, USER_SYSTEM, USER_STOP_RULE, USER_OPENING, USER_GREETING,
             USER_TOOLS)
    return sha256_hex("\0".join(texts).encode("utf-8"))
