"""The planner-executor loop: plan, work on one subgoal at a time, track progress, re-plan when stuck.

The planner owns the global plan; per subgoal the configured search strategy does the local work (the plain
loop, best-of-n or mcts) with its own budget; after every step a progress ledger decides whether to continue,
advance (a commit point: the next subgoal starts from the state reached) or re-plan (Magentic-One's outer loop),
carrying a facts ledger over. Finished subgoals are replaced by summaries in the prompt (HiAgent).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from branchwise.agent.errors import Completed, Failed
from branchwise.agent.models.base import Message, Reply, reply_event
from branchwise.agent.plan.condense import WorkingMemory, context_budget, make_counter, summarize_subgoal
from branchwise.agent.plan.ledger import LOOP_NUDGE, Ledger
from branchwise.agent.plan.planner import Plan, Subgoal, ask_for_plan, plan_messages
from branchwise.agent.record.events import Check, CheckResult, PlanMade, Progress, Replan
from branchwise.agent.run.loop import Executor

if TYPE_CHECKING:
    from branchwise.agent.run.session import Session

PINNED_MESSAGES = 3  # system prompt with the plan, the task, the current subgoal
QUESTION_SYSTEM = (
    "You check an agent's work. Answer the question about it with one JSON object: "
    '{"explanation": "...", "reward": 100} for yes, or the same with -100 for no.'
)


class Orchestrator:
    """Runs a task as a sequence of subgoals; raises StopRun (Completed, Failed, BudgetExceeded) at the end."""

    def __init__(self, session: Session, task: str) -> None:
        self.s, self.task = session, task
        self.cfg = session.config.planner
        self.executor = Executor(
            session.model,
            session.toolbox,
            session.ctx,
            session.bus,
            session.config.limits,
            temperature=session.config.llm.temperature,
            gate=session.gate,
        )
        counter = make_counter(session.model)
        budget = context_budget(session.model, self.cfg.context_tokens)
        self.memory = WorkingMemory(counter, budget, session.bus, enabled=self.cfg.condense)
        self.system = session.system_prompt()
        self.plan = Plan(subgoals=[Subgoal(title=task)])
        self.revision = 0
        self.summaries: list[str] = []
        self.last_summary = ""

    # -- planning ------------------------------------------------------------------------------------

    def make_plan(self) -> Plan:
        """The task file's plan as given, or one written by the model."""
        given = self.s.loaded.task.get("plan")
        if given is not None:
            plan = Plan.model_validate({"subgoals": given})  # checked when the task file was loaded
        else:
            plan, replies = ask_for_plan(self.s.model, plan_messages(self.task, self.repo_context()))
            self.record(replies)
        self.plan = plan
        self.s.bus.emit(PlanMade(subgoals=_dump(plan), facts=plan.facts, revision=0, given=given is not None))
        return plan

    def repo_context(self) -> str:
        """What the planner should know: project instructions, tips, the task's checks, the top of the tree."""
        from branchwise.agent.run.prompts import find_instructions

        parts = []
        instructions = find_instructions(self.s.workspace, self.s.config.instructions)
        if instructions is not None:
            parts.append(f"Project instructions ({instructions[0].name}):\n{instructions[1]}")
        tips, _ = self.s.memory.retrieve(self.task, str(self.s.workspace))
        if tips:
            parts.append("Notes from past tasks (may be wrong):\n" + "\n".join(f"- {t}" for t in tips))
        if self.s.config.checks:
            parts.append("The task is only done when these checks pass:\n" + "\n".join(self.s.config.checks))
        listing = self.s.toolbox.get("view").run(self.s.toolbox.parse_args("view", {"path": "."}), self.s.ctx)
        parts.append("Files in the repository:\n" + "\n".join(listing.output.splitlines()[:120]))
        return "\n\n".join(parts)

    def replan(self, index: int, reason: str) -> None:
        """Ask for a new plan for the remaining work; finished subgoals stay, facts carry over."""
        if self.revision >= self.cfg.max_replans:
            raise Failed(f"still stuck after {self.revision} re-plans: {reason}")
        self.revision += 1
        done = "\n\n".join(self.summaries) or "(nothing finished yet)"
        previous = (
            f"Progress so far:\n{done}\n\nThe current plan:\n{self.plan.render(done=index)}\n\n"
            f"Re-plan: work stopped at subgoal {index + 1}: {reason}.\nFacts learned so far:\n"
            + ("\n".join(f"- {f}" for f in self.plan.facts) or "(none)")
            + "\n\nWrite a plan for the remaining work only (finished subgoals stay done), with any new facts."
        )
        fresh, replies = ask_for_plan(self.s.model, plan_messages(self.task, self.repo_context(), previous=previous))
        self.record(replies)
        facts = list(dict.fromkeys([*self.plan.facts, *fresh.facts]))
        self.plan = Plan(subgoals=[*self.plan.subgoals[:index], *fresh.subgoals], facts=facts)
        self.s.bus.emit(Replan(subgoal=index, reason=reason, facts=facts, revision=self.revision))
        self.s.bus.emit(PlanMade(subgoals=_dump(self.plan), facts=facts, revision=self.revision))

    def record(self, replies: list[Reply]) -> None:
        """Planner calls are model calls of the run: in the trajectory, the budget and the token totals."""
        for reply in replies:
            self.executor.usage = self.executor.usage + reply.usage
            self.executor.cost_usd += reply.cost_usd
            self.s.bus.emit(reply_event(reply, self.s.model.name, "plan"))

    # -- running -------------------------------------------------------------------------------------

    def run(self) -> None:
        self.make_plan()
        index = 0
        while True:
            while index < len(self.plan.subgoals):
                reason = self.run_subgoal(index)
                if reason is None:
                    index += 1
                else:
                    self.replan(index, reason)
            reason = self.final_checks()
            self.replan(index, reason)

    def final_checks(self) -> str:
        """All subgoals are done: the task's checks decide. Returns why they fail (to re-plan) or raises."""
        summary = self.last_summary or "completed the plan: " + "; ".join(s.title for s in self.plan.subgoals)
        if not self.s.config.checks:
            raise Completed(summary)
        results = self.s.run_checks()
        self.executor.last_checks = results
        failed = [c for c in results if not c.passed]
        if not failed:
            raise Completed(summary)
        return f"every subgoal is done but the task's check `{failed[0].command}` fails: {_tail(failed[0].output)}"

    def run_subgoal(self, index: int) -> str | None:
        """Work on one subgoal; None when it is done, else why to re-plan."""
        if self.s.config.search.strategy == "none":
            return self.plain(index)
        return self.search(index)

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

    def plain(self, index: int) -> str | None:
        """The plain loop on one subgoal, with the ledger after every step."""
        sub, ex = self.plan.subgoals[index], self.executor
        # Without condensation the conversation simply goes on; with it, each subgoal starts from its summary.
        ex.messages = self.opening(index) if self.cfg.condense or index == 0 else [*ex.messages, self.intro(index)]
        ex.run_checks = lambda: self.subgoal_checks(sub)
        ex.finish_rejections = ex.format_errors = 0
        ledger = Ledger(self.cfg.stall_steps, self.cfg.max_failures, self.cfg.max_steps_per_subgoal)
        before = self.s.snapshots.snapshot(f"subgoal {index + 1}")
        while True:
            self.memory.fit(ex.messages, PINNED_MESSAGES)
            try:
                ex.step()
            except Completed as finished:
                self.subgoal_done(index, ex.messages, finished.summary, "the model finished it and its check passed")
                return None
            except Failed as failed:
                return failed.reason
            now = self.s.snapshots.snapshot(f"subgoal {index + 1} step")
            changed = bool(self.s.snapshots.changed_paths(before, now))
            before = now
            outcome = ex.last_outcome
            assert outcome is not None
            passes = bool(sub.done_check) and self.cfg.check_each_step and self.subgoal_checks(sub)[0].passed
            progress = ledger.assess(
                index, sub.title, outcome.results, malformed=outcome.malformed, files_changed=changed, done=passes
            )
            if progress.decision == "advance":
                self.subgoal_done(index, ex.messages, "", progress.reason)
                return None
            self.s.bus.emit(progress)
            if progress.decision == "replan":
                return progress.reason
            if progress.looping:
                ex.messages.append({"role": "user", "content": LOOP_NUDGE})

    def search(self, index: int) -> str | None:
        """The configured search on one subgoal, with the subgoal's check as its verifier."""
        from branchwise.agent.search import make_search

        sub, ex = self.plan.subgoals[index], self.executor
        settings = self.s.config.search.model_copy(update={"max_nodes": self.cfg.max_steps_per_subgoal + 1})
        limits = self.s.config.limits
        remaining_cost = max(0.0, limits.max_cost_usd - ex.cost_usd) if limits.max_cost_usd else 0.0
        checkable = bool(sub.done_check or (sub.done_question and self.s.judge() is not None))
        sc = self.s.search_context(
            settings,
            limits.model_copy(update={"max_cost_usd": remaining_cost}),
            (lambda: self.subgoal_checks(sub)) if checkable else None,
            self.s.run_dir / f"tree-{index + 1}-{self.revision}.json",
            f"{self.task}\n\nCurrent subgoal: {sub.title}",
        )
        search = make_search(settings.strategy, sc)
        try:
            result = search.run(self.opening(index))
        finally:
            ex.steps += search.budget.nodes
            ex.usage, ex.cost_usd = ex.usage + search.budget.usage, ex.cost_usd + search.budget.cost_usd
        if result.status == "completed":
            looping = (
                any(n.signals.get("repeated") for n in result.tree.path(result.chosen.id)) if result.chosen else False
            )
            self.subgoal_done(index, result.messages, result.summary, f"the {settings.strategy} search verified it",
                              looping=looping)  # fmt: skip
            return None
        return f"the {settings.strategy} search ended {result.status}: {result.summary}"

    def subgoal_checks(self, sub: Subgoal) -> list[CheckResult]:
        """The subgoal's done-check (a command, or a question for the judge); nothing to check passes."""
        if sub.done_check:
            res = self.s.run_command(sub.done_check)
            result = CheckResult(
                command=sub.done_check, exit_code=res.exit_code, passed=res.ok, output=res.output[-2000:]
            )
            self.s.bus.emit(Check(result=result))
            return [result]
        judge = self.s.judge()
        if sub.done_question and judge is not None:
            from branchwise.agent.search.value import ask_judge

            work = _transcript(self.executor.messages)
            messages = [
                {"role": "system", "content": QUESTION_SYSTEM},
                {
                    "role": "user",
                    "content": f"Task: {self.task}\nWork so far:\n{work}\n\nQuestion: {sub.done_question}",
                },
            ]
            (judgement,), reply = ask_judge(judge, messages, 1)
            self.record([reply])
            yes = judgement is not None and judgement.value > 0.5
            return [CheckResult(command=f"question: {sub.done_question}", exit_code=0 if yes else 1, passed=yes)]
        return []

    def subgoal_done(
        self, index: int, messages: list[Message], summary: str, reason: str, *, looping: bool = False
    ) -> None:
        """Advance: remember what the subgoal did as a summary, which replaces its steps in later prompts."""
        sub = self.plan.subgoals[index]
        self.s.bus.emit(Progress(subgoal=index, title=sub.title, done=True, looping=looping, decision="advance",
                                 reason=reason))  # fmt: skip
        self.last_summary = summary  # the run's summary is the last subgoal's own, if its finish gave one
        check = f"Check `{sub.done_check}` passed." if sub.done_check else ""
        self.summaries.append(summarize_subgoal(index, sub.title, messages[PINNED_MESSAGES:], check))
        if self.cfg.condense and index + 1 < len(self.plan.subgoals):
            steps = sum(1 for m in messages[PINNED_MESSAGES:] if m["role"] == "assistant")
            self.memory.replace_subgoal(messages, self.opening(index + 1), index=index, title=sub.title, steps=steps)


def _dump(plan: Plan) -> list[dict[str, object]]:
    return [s.model_dump(exclude_none=True) for s in plan.subgoals]


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])[:300]


def _transcript(messages: list[Message], limit: int = 6000) -> str:
    text = "\n".join(f"{m['role']}: {m.get('content') or ''}" for m in messages[PINNED_MESSAGES:])
    return text[-limit:]
