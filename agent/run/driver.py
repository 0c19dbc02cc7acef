"""The planner-level loop: plan, give one subgoal at a time to the solver, re-plan when stuck, verify the end.

The planner owns the global plan; per subgoal the configured solver (the plain loop, best-of-n or mcts) does
the local work within a narrowed budget; its outcome decides whether to advance (a commit point: the next
subgoal starts from the state reached) or re-plan, carrying a ledger of facts over (Magentic-One's outer loop:
an orchestrator that re-plans from a facts ledger when progress stalls). Finished subgoals are replaced by
summaries in later prompts (HiAgent: working memory organised by subgoals, each closed one kept as a summary).
Without a planner, or when the model cannot plan, the task itself is the only subgoal, verified by the task's
checks.
"""

from __future__ import annotations

from typing import NoReturn

from branchwise.agent.errors import BudgetExceeded, Completed, Failed
from branchwise.agent.memory.base import Memory
from branchwise.agent.models.base import Message, Reply
from branchwise.agent.plan.condense import summarize_subgoal
from branchwise.agent.plan.planner import SUBMIT_PLAN, Plan, PlanAnswer, Subgoal, ask_for_plan, plan_messages
from branchwise.agent.record.events import CheckResult, PlanMade, Progress, Replan, Warning
from branchwise.agent.run.context import RunContext
from branchwise.agent.run.loop import PINNED_MESSAGES
from branchwise.agent.run.solver import Goal, Outcome, Solver, Verify
from branchwise.agent.search.value import ask_judge

QUESTION_SYSTEM = (
    "You check an agent's work. Answer the question about it with one JSON object: "
    '{"explanation": "...", "reward": 100} for yes, or the same with -100 for no.'
)


class Driver:
    """Runs a task as a sequence of subgoals; raises StopRun (Completed, Failed, BudgetExceeded) at the end."""

    def __init__(
        self,
        rc: RunContext,
        solver: Solver,
        task: str,
        *,
        system: str,
        planning: bool,
        given_plan: list[dict[str, object]] | None = None,
        memory: Memory | None = None,
        instructions: tuple[str, str] | None = None,
    ) -> None:
        self.rc, self.solver, self.task, self.system = rc, solver, task, system
        self.planning, self.given_plan = planning, given_plan
        self.memory, self.instructions = memory, instructions
        self.cfg = rc.config.planner
        self.plan = Plan(subgoals=[Subgoal(title=task)])
        self.single = True
        """The task is its one subgoal: no plan (planner off, or the model could not plan)."""
        self.revision = 0
        self.summaries: list[str] = []
        self.last_summary = ""
        self.first_reply: Reply | None = None
        """A reply the model gave instead of a plan: its first action, not to be lost."""
        self.last_checks: list[CheckResult] | None = None

    # -- planning ------------------------------------------------------------------------------------

    def make_plan(self) -> Plan:
        """The task file's plan as given, one written by the model, or the task as the only subgoal."""
        if self.given_plan is not None:
            self.plan = Plan.model_validate({"subgoals": self.given_plan})  # checked when the task file was loaded
            self.single = False
            self.rc.bus.emit(PlanMade(subgoals=_dump(self.plan), facts=self.plan.facts, revision=0, given=True))
        elif self.planning:
            self.adopt(self.ask_plan(""), given=False)
        return self.plan

    def ask_plan(self, previous: str) -> PlanAnswer:
        messages = plan_messages(self.task, self.repo_context(), previous=previous)
        return ask_for_plan(lambda m: self.rc.asker.ask(self.rc.model, m, [SUBMIT_PLAN], temperature=0.0,
                                                        purpose="plan")[0], messages)  # fmt: skip

    def adopt(self, answer: PlanAnswer, *, given: bool) -> None:
        """Use a first plan, or fall back to the task as the only subgoal when the model did not plan."""
        if answer.plan is not None:
            self.plan, self.single = answer.plan, False
        else:
            self.first_reply = answer.action
            self.rc.bus.emit(Warning(message=f"no plan: {answer.problem}; working on the task as one subgoal"))
        self.rc.bus.emit(PlanMade(subgoals=_dump(self.plan), facts=self.plan.facts, revision=0, given=given))

    def repo_context(self) -> str:
        """What the planner should know: project instructions, tips, the task's checks, the top of the tree."""
        parts = []
        if self.instructions is not None:
            parts.append(f"Project instructions ({self.instructions[0]}):\n{self.instructions[1]}")
        notes = self.memory.recall(self.task, purpose="plan", shortcuts=False).text if self.memory else ""
        if notes:
            parts.append(notes)
        if self.rc.config.checks:
            parts.append("The task is only done when these checks pass:\n" + "\n".join(self.rc.config.checks))
        view = self.rc.toolbox.get("view")
        listing = view.run(self.rc.toolbox.parse_args("view", {"path": "."}), self.rc.tools)
        parts.append("Files in the repository:\n" + "\n".join(listing.output.splitlines()[:120]))
        return "\n\n".join(parts)

    def replan(self, index: int, reason: str) -> None:
        """Ask for a new plan for the remaining work; finished subgoals stay, facts carry over."""
        if self.single or self.revision >= self.cfg.max_replans:
            raise Failed(reason if self.single else f"still stuck after {self.revision} re-plans: {reason}")
        self.revision += 1
        done = "\n\n".join(self.summaries) or "(nothing finished yet)"
        previous = (
            f"Progress so far:\n{done}\n\nThe current plan:\n{self.plan.render(done=index)}\n\n"
            f"Re-plan: work stopped at subgoal {index + 1}: {reason}.\nFacts learned so far:\n"
            + ("\n".join(f"- {f}" for f in self.plan.facts) or "(none)")
            + "\n\nWrite a plan for the remaining work only (finished subgoals stay done), with any new facts."
        )
        answer = self.ask_plan(previous)
        if answer.plan is None:
            self.first_reply = answer.action
            self.rc.bus.emit(Warning(message=f"no new plan: {answer.problem}; the rest of the task is one subgoal"))
            fresh = Plan(subgoals=[Subgoal(title=f"Finish the task: {self.task}")])
        else:
            fresh = answer.plan
        facts = list(dict.fromkeys([*self.plan.facts, *fresh.facts]))
        self.plan = Plan(subgoals=[*self.plan.subgoals[:index], *fresh.subgoals], facts=facts)
        self.rc.bus.emit(Replan(subgoal=index, reason=reason, facts=facts, revision=self.revision))
        self.rc.bus.emit(PlanMade(subgoals=_dump(self.plan), facts=facts, revision=self.revision))

    # -- running -------------------------------------------------------------------------------------

    def run(self) -> NoReturn:
        self.make_plan()
        if self.single:
            self.run_single()
        index = 0
        while True:
            while index < len(self.plan.subgoals):
                outcome = self.run_subgoal(index)
                if outcome.status == "done":
                    self.subgoal_done(index, outcome)
                    index += 1
                else:
                    self.replan(index, outcome.reason or f"the {self.solver.name} solver ended {outcome.status}")
            self.replan(index, self.final_checks())

    def run_single(self) -> NoReturn:
        """The task as one goal, verified by the task's checks."""
        checks = self.rc.config.checks
        verify: Verify | None = (lambda _conversation: self.rc.checker.run(checks)) if checks else None
        goal = Goal(
            index=0,
            title=self.task,
            opening=[{"role": "system", "content": self.system}, {"role": "user", "content": self.task}],
            task=self.task,
            tree_path=self.rc.run_dir / "tree.json",
            first_reply=self.first_reply,
        )
        outcome = self.solver.solve(goal, verify, self.rc.budget.view("the task", **self.search_caps()))
        self.last_checks = outcome.checks
        if outcome.status == "done":
            raise Completed(outcome.summary)
        if outcome.status == "exhausted":
            raise BudgetExceeded(outcome.reason, limit=outcome.limit)
        raise Failed(outcome.reason or f"the {self.solver.name} solver ended {outcome.status}")

    def search_caps(self) -> dict[str, int]:
        """A search's own node and model-call caps (the plain loop has none of its own)."""
        if self.solver.name == "none":
            return {}
        search = self.rc.config.search
        return {"steps": search.max_nodes, "model_calls": search.max_model_calls}

    def run_subgoal(self, index: int) -> Outcome:
        """Work on one subgoal with the solver, its done-check as the verifier."""
        sub = self.plan.subgoals[index]
        verify = self.verifier(sub)
        goal = Goal(
            index=index,
            title=sub.title,
            opening=self.opening(index),
            task=f"{self.task}\n\nCurrent subgoal: {sub.title}",
            check_each_step=bool(sub.done_check) and self.cfg.check_each_step,
            replan=True,
            tree_path=self.rc.run_dir / f"tree-{index + 1}-{self.revision}.json",
            first_reply=self.first_reply,
        )
        self.first_reply = None
        caps = self.search_caps()
        caps["steps"] = min(caps.get("steps", self.cfg.max_steps_per_subgoal), self.cfg.max_steps_per_subgoal)
        return self.solver.solve(goal, verify, self.rc.budget.view(f"subgoal {index + 1}", **caps))

    def final_checks(self) -> str:
        """All subgoals are done: the task's checks decide. Returns why they fail (to re-plan) or raises."""
        summary = self.last_summary or "completed the plan: " + "; ".join(s.title for s in self.plan.subgoals)
        if not self.rc.config.checks:
            raise Completed(summary)
        results = self.rc.checker.run(self.rc.config.checks)
        self.last_checks = results
        failed = [c for c in results if not c.passed]
        if not failed:
            raise Completed(summary)
        return f"every subgoal is done but the task's check `{failed[0].command}` fails: {_tail(failed[0].output)}"

    def opening(self, index: int) -> list[Message]:
        """The pinned start of a subgoal's conversation: system prompt with the plan, task, subgoal."""
        system = f"{self.system}\n\nThe plan (one subgoal at a time):\n{self.plan.render(done=index)}"
        if self.plan.facts:
            system += "\n\nFacts learned so far:\n" + "\n".join(f"- {f}" for f in self.plan.facts)
        done = "\n\n".join(self.summaries)
        intro = self.intro(index)
        intro["content"] = (f"{done}\n\n" if done else "") + intro["content"]
        return [{"role": "system", "content": system}, {"role": "user", "content": self.task}, intro]

    def intro(self, index: int) -> Message:
        """The message that starts work on a subgoal: what it is and how its end is told."""
        sub = self.plan.subgoals[index]
        how = (
            f"It is done when `{sub.done_check}` exits 0; that check runs after each of your steps."
            if sub.done_check
            else f"It is done when the answer to this is yes: {sub.done_question}"
            if sub.done_question
            else "Decide yourself when it is done."
        )
        text = (
            f"Now work on subgoal {index + 1} of {len(self.plan.subgoals)}: {sub.title}\n{how}\n"
            "When this subgoal is done, call finish with a short summary of what you did for it."
        )
        return {"role": "user", "content": text}

    def verifier(self, sub: Subgoal) -> Verify | None:
        """The subgoal's done-check (a command, or a question for the judge); None: nothing to check."""
        if sub.done_check:
            command = sub.done_check
            return lambda _conversation: self.rc.checker.run([command], output_chars=2000)
        if sub.done_question and self.rc.judge is not None:
            question = sub.done_question
            return lambda conversation: [self.ask_question(question, conversation)]
        return None

    def ask_question(self, question: str, conversation: list[Message]) -> CheckResult:
        """A yes/no question about the work so far, answered by the judge."""
        judge = self.rc.judge
        assert judge is not None
        work = _transcript(conversation)
        messages: list[Message] = [
            {"role": "system", "content": QUESTION_SYSTEM},
            {"role": "user", "content": f"Task: {self.task}\nWork so far:\n{work}\n\nQuestion: {question}"},
        ]
        ask = lambda m: self.rc.asker.ask(judge, m, [], temperature=0.0, purpose="judge")[0]  # noqa: E731
        (judgement,), _ = ask_judge(ask, messages, 1)
        yes = judgement is not None and judgement.value > 0.5
        return CheckResult(command=f"question: {question}", exit_code=0 if yes else 1, passed=yes)

    def subgoal_done(self, index: int, outcome: Outcome) -> None:
        """Advance: remember what the subgoal did as a summary, which replaces its steps in later prompts."""
        sub = self.plan.subgoals[index]
        reason = outcome.reason or f"the {self.solver.name} solver finished it and its check passed"
        self.rc.bus.emit(Progress(subgoal=index, title=sub.title, done=True, looping=outcome.looping,
                                  decision="advance", reason=reason))  # fmt: skip
        self.last_summary = outcome.summary  # the run's summary is the last subgoal's own, if its finish gave one
        check = f"Check `{sub.done_check}` passed." if sub.done_check else ""
        messages = outcome.messages
        self.summaries.append(summarize_subgoal(index, sub.title, messages[PINNED_MESSAGES:], check))
        if self.cfg.condense and index + 1 < len(self.plan.subgoals):
            steps = sum(1 for m in messages[PINNED_MESSAGES:] if m["role"] == "assistant")
            self.rc.condense.replace_subgoal(messages, self.opening(index + 1), index=index, title=sub.title,
                                             steps=steps)  # fmt: skip


def _dump(plan: Plan) -> list[dict[str, object]]:
    return [s.model_dump(exclude_none=True) for s in plan.subgoals]


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])[:300]


def _transcript(messages: list[Message], limit: int = 6000) -> str:
    text = "\n".join(f"{m['role']}: {m.get('content') or ''}" for m in messages[PINNED_MESSAGES:])
    return text[-limit:]
