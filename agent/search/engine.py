"""What every search strategy does: restore a node, propose replies, run each in the workspace, value it.

One expansion = restore the parent's snapshot → run the reply's tool calls through the actor (policy,
sandbox) → snapshot → value (executable signals first, the judge second) → backpropagate. Every executed
node is one step of the run's budget; proposals and judgements are its model calls.
"""

from __future__ import annotations

import copy
from pathlib import Path

from branchwise.agent.models.base import Message, Reply
from branchwise.agent.record.events import SearchDone, SearchNode, StepFinished, ToolCallRecord
from branchwise.agent.record.normalise import normalise
from branchwise.agent.run.actor import NO_TOOL_CALL, Acted
from branchwise.agent.run.budget import Exhausted
from branchwise.agent.run.gate import classify_calls
from branchwise.agent.search import final
from branchwise.agent.search import value as V
from branchwise.agent.search.actions import (
    action_key,
    alternatives_note,
    page_seen,
    path_observations,
    short_outcome,
    summarize,
)
from branchwise.agent.search.context import Pending, SearchContext, SearchResult
from branchwise.agent.search.static import check_files
from branchwise.agent.search.tree import Node, SearchTree
from branchwise.tools import Observation

PINNED_MESSAGES = 3


class Search:
    """Shared machinery; strategies decide which node to expand next and when to stop."""

    name = "search"

    def __init__(self, sc: SearchContext) -> None:
        self.sc = sc
        self.tree = SearchTree(strategy=self.name)
        self.budget = sc.budget
        self.exhausted: Exhausted | None = None
        self._histories: dict[int, dict[str, list[bytes | None]]] = {}
        self._current: int | None = None
        self._first_reply = sc.first_reply
        self.use_judge = sc.judge is not None

    def run(self, messages: list[Message]) -> SearchResult:
        """Search from the conversation `messages` and the workspace as it is now."""
        raise NotImplementedError

    def out_of_budget(self) -> str | None:
        """Why no more nodes may be made (the run's limits or the search's own caps), remembered for the verdict."""
        self.exhausted = self.budget.exhausted()
        return self.exhausted.reason if self.exhausted else None

    # -- the tree --------------------------------------------------------------------------------

    def make_root(self, messages: list[Message]) -> Node:
        root = self.tree.add(Node(id=0, messages=messages, action="(start)", kind="read", status="open"))
        root.snapshot = self.sc.workspace.snapshot("root")
        root.cwd = str(self.sc.ctx.cwd) if self.sc.ctx.cwd else None
        root.visits = 1
        signals = V.Signals()
        if self.checks_each_step():
            self.check_state(root, signals)  # the baseline the first edits are measured against
        root.reward = V.blend(signals, None, finished=False, previous_tests=None)
        root.signals = signals.as_dict()
        self._histories[root.id] = copy.deepcopy(self.sc.ctx.edit_history)
        self._current = root.id
        self.emit_node(root)
        return root

    def restore(self, node: Node) -> None:
        """Put the workspace, shell directory and edit history back as they were at `node`."""
        if self._current == node.id:
            return
        ctx = self.sc.ctx
        ctx.sandbox.stop_background()
        self.sc.workspace.restore(node.snapshot)
        ctx.cwd = Path(node.cwd) if node.cwd else None
        ctx.edit_history = copy.deepcopy(self._histories.get(node.id, {}))
        for command in node.replay:  # state outside the workspace, rebuilt by re-running what made it
            ctx.sandbox.run(["bash", "--noprofile", "--norc", "-c", command], cwd=ctx.workspace, timeout=300)
        self._current = node.id

    def patch_of(self, node: Node) -> str:
        return str(self.sc.workspace.diff(self.tree.nodes[0].snapshot, node.snapshot).patch)

    def enough_verified(self) -> str | None:
        """A stop reason once `min_verified` distinct candidates pass the checks and the judge agrees."""
        need = self.sc.settings.min_verified
        # Weak tests pass wrong changes too: stop early only when the judge does not object to the candidate.
        bar = self.sc.settings.early_stop_judge
        found = [n for n in final.verified_nodes(self.tree) if n.judge is None or n.judge["value"] >= bar]
        if len(found) >= need and (need == 1 or len(final.distinct(found, self.patch_of)) >= need):
            return f"{need} verified candidate{'s' if need > 1 else ''} found"
        return None

    # -- proposing -------------------------------------------------------------------------------

    def propose(self, node: Node, k: int, feedback: str | None) -> list[Reply]:
        """Up to k candidate replies from the node's conversation: one query with n, or alternatives in turn.

        Never more than the budget can still execute and pay for."""
        messages = self.tree.conversation(node.id)
        if feedback:
            messages = [*messages, {"role": "user", "content": feedback}]
        if self.sc.condense is not None:
            messages = list(messages)
            self.sc.condense.fit(messages, PINNED_MESSAGES)
        k = max(1, min(k, self.budget.calls_left(), self.budget.steps_left()))
        replies: list[Reply] = []
        if self._first_reply is not None and node.id == 0:
            replies, self._first_reply = [self._first_reply], None
            k -= 1
        tools = self.sc.actor.toolbox.schemas()
        temperature = self.sc.settings.temperature
        if k > 0 and (k == 1 or self.sc.model.supports_n):
            replies += self.sc.asker.ask(self.sc.model, messages, tools, n=k, temperature=temperature)
        else:
            for _ in range(k):
                asked = messages + ([{"role": "user", "content": alternatives_note(replies)}] if replies else [])
                replies += self.sc.asker.ask(self.sc.model, asked, tools, n=1, temperature=temperature)
        return replies

    # -- executing a child -----------------------------------------------------------------------

    def add_child(self, parent: Node, reply: Reply, feedback: str | None, *, dedupe: bool = True) -> Node:
        """Run one reply from `parent`'s state and value the new node (a duplicate is recorded, not run)."""
        return self.add_children(parent, [reply], feedback, dedupe=dedupe)[0]

    def add_children(
        self, parent: Node, replies: list[Reply], feedback: str | None, *, dedupe: bool = True
    ) -> list[Node]:
        """Run sibling replies from `parent`'s state, then value them all with one judge call."""
        # As Agent Q's self-critique ranks a node's proposed actions at once: proposing several costs one judgement.
        ran = [self.run_child(parent, reply, feedback, dedupe=dedupe) for reply in replies]
        pending = [p for p in ran if isinstance(p, Pending)]
        asked = [p for p in pending if self.wants_judge(p)] if self.budget.calls_left() > 0 else []
        agreed = self.agreed(parent, replies, asked)
        verdicts = dict(zip([p.node.id for p in asked], self.judge(asked), strict=True)) if asked and not agreed else {}
        for p in pending:
            self.settle(p, verdicts.get(p.node.id, agreed))
        return [p.node if isinstance(p, Pending) else p for p in ran]

    def agreed(self, parent: Node, replies: list[Reply], asked: list[Pending]) -> V.Judgement | None:
        """The judgement of a step every proposal agreed on: the value of its parent's state, at no call."""
        # Agreement between samples stands in for the judge (LATS's self-consistency term; Koh keeps the most
        # frequent proposals). A mistake made this way shows in the next judged state, whose path includes it.
        judged = (parent.judge or {}).get("value")
        if not self.sc.settings.judge_agreement or len(replies) < 2 or len(asked) != 1 or judged is None:
            return None
        if asked[0].node.finished or len({action_key(r.tool_calls) for r in replies}) > 1:
            return None  # a finish always gets its own judgement: it decides whether the search stops
        return V.Judgement(value=judged, explanation=f"not judged: all {len(replies)} proposals agreed on this step")

    def run_child(self, parent: Node, reply: Reply, feedback: str | None, *, dedupe: bool) -> Pending | Node:
        """Run one reply from `parent`'s state and gather its executable signals (a duplicate is recorded, not run)."""
        key = action_key(reply.tool_calls)
        prefix = [{"role": "user", "content": feedback}] if feedback else []
        node = Node(
            id=0,
            parent=parent.id,
            depth=parent.depth + 1,
            action=summarize(reply),
            action_key=key,
            kind=classify_calls(reply.tool_calls, self.sc.actor.toolbox),
            feedback=feedback,
            replay=list(parent.replay),
            messages=[*prefix, reply.as_message()],
            cost_usd=reply.cost_usd,
        )
        if dedupe and any(self.tree.nodes[c].action_key == key for c in parent.children):
            node.status, node.snapshot, node.reward = "duplicate", parent.snapshot, 0.0
            self.tree.add(node)
            self.emit_node(node)
            return node
        self.tree.add(node)
        self.restore(parent)
        self.sc.bus.step = node.id
        outcome = self.sc.actor.act(reply)
        node.messages += outcome.messages
        node.url, node.screenshot = page_seen(outcome.results, self.sc.tree_path.parent if self.sc.tree_path else None)
        signals = self.signals(node, outcome)
        if outcome.finish is not None:
            self.finish_node(node, outcome.finish, signals)
        elif outcome.no_tool_call:
            node.messages.append({"role": "user", "content": NO_TOOL_CALL})
            signals.tool_errors += 1
        unchanged = node.kind == "read" or outcome.read_only
        node.snapshot = parent.snapshot if unchanged else self.sc.workspace.snapshot(f"node {node.id}")
        node.cwd = str(self.sc.ctx.cwd) if self.sc.ctx.cwd else None
        self._histories[node.id] = copy.deepcopy(self.sc.ctx.edit_history)
        self._current = node.id
        if node.kind == "stateful":
            node.replay += [str((c.arguments or {}).get("command", "")) for c in reply.tool_calls if c.name == "shell"]
        if node.kind in ("file", "ephemeral") and node.snapshot != parent.snapshot:
            changed = self.sc.workspace.changed_paths(parent.snapshot, node.snapshot)
            self.static_checks(changed, signals)
            if changed and not node.finished and not signals.syntax_errors and self.checks_each_step():
                self.check_state(node, signals)
        return Pending(node, parent, signals, outcome)

    def settle(self, pending: Pending, judgement: V.Judgement | None) -> None:
        """Value a node that has run, backpropagate, and record it."""
        node = pending.node
        self.evaluate(node, pending.parent, pending.signals, judgement)
        self.tree.backpropagate(node.id, node.reward or 0.0)
        tally = self.budget.budget.tally
        self.sc.bus.emit(StepFinished(usage=tally.usage, cost_usd=tally.cost_usd))
        self.emit_node(node)
        self.save()

    def signals(self, node: Node, outcome: Acted) -> V.Signals:
        signals = V.Signals()
        path_results = path_observations(self.tree, node)
        for call, obs in outcome.results:
            if obs.data.get("refused"):
                signals.refused += 1
            elif obs.is_error:
                signals.tool_errors += 1
            if call.name == "shell":
                command = str((call.arguments or {}).get("command", ""))
                counts = V.parse_test_counts(obs.output) if V.is_test_command(command) else None
                if counts is not None:
                    passed, failed = counts
                    previous = signals.tests or (0, 0)
                    signals.tests = (previous[0] + passed, previous[1] + failed)
                elif obs.data.get("exit_code") not in (0, None):
                    signals.nonzero_exits += 1
            if (call.name, call.args_key(), normalise(obs.output)) in path_results:
                signals.repeated = True
        return signals

    def checks_each_step(self) -> bool:
        return self.sc.verify is not None and self.sc.settings.check_after_edits

    def verify(self, node: Node) -> list:
        assert self.sc.verify is not None
        return self.sc.verify(self.tree.conversation(node.id))

    def check_state(self, node: Node, signals: V.Signals) -> None:
        """Run the task's checks on the current state and count them as test results for the reward."""
        results = self.verify(node)
        counts = [V.parse_test_counts(c.output) for c in results]
        passed = sum(c[0] if c else int(r.passed) for c, r in zip(counts, results, strict=True))
        failed = sum(c[1] if c else int(not r.passed) for c, r in zip(counts, results, strict=True))
        previous = signals.tests or (0, 0)
        signals.tests = (previous[0] + passed, previous[1] + failed)
        node.checks = results

    def static_checks(self, changed: list[str], signals: V.Signals) -> None:
        """Syntax and undefined names in the Python files this step changed (deleted files are skipped)."""
        signals.syntax_errors, signals.lint_errors = check_files(self.sc.ctx.fs, changed)

    def finish_node(self, node: Node, finish: tuple[ToolCallRecord, Observation], signals: V.Signals) -> None:
        """A finish is verified at once with the task's checks; the verdict is the finish call's result."""
        call, obs = finish
        node.summary = obs.output
        if self.sc.verify is None:
            node.status = "finished"
            node.messages.append(self.sc.actor.tool_message(call, Observation("Finished.")))
            return
        node.checks = self.verify(node)
        failed = [c for c in node.checks if not c.passed]
        parent = self.tree.nodes[node.parent or 0]
        if failed and node.kind == "read" and parent.checks and all(c.passed for c in parent.checks):
            # The same files passed these checks a moment ago: a flaky check, and a third run breaks the tie.
            node.checks = self.verify(node)
            failed = [c for c in node.checks if not c.passed]
        signals.checks = node.checks
        if not failed:
            node.status = "verified"
            node.messages.append(self.sc.actor.tool_message(call, Observation("Finished; all checks passed.")))
            return
        node.status = "failed"
        report = "\n\n".join(f"$ {c.command}\n[exit code {c.exit_code}]\n{c.output}" for c in failed)
        text = f"Not finished: the task's checks fail.\n{report}\nFix the problem, then call finish again."
        node.messages.append(self.sc.actor.tool_message(call, Observation(text, is_error=True)))

    def wants_judge(self, pending: Pending) -> bool:
        """The judge is asked unless the executable signals decide (a refused finish is valued by its checks)."""
        node, finished = pending.node, pending.node.status in ("finished", "verified")
        return self.use_judge and node.status != "failed" and not V.decisive(pending.signals, finished=finished)

    def evaluate(self, node: Node, parent: Node, signals: V.Signals, judgement: V.Judgement | None) -> None:
        finished = node.status in ("finished", "verified")
        previous = parent.signals.get("tests")
        previous_tests = (previous["passed"], previous["failed"]) if previous else None
        if node.status == "failed":
            node.reward = V.failed_finish_reward(node.checks)
        else:
            node.reward = V.blend(
                signals, judgement.value if judgement else None, finished=finished, previous_tests=previous_tests
            )
        node.signals = signals.as_dict()
        if judgement is not None:
            node.judge = {
                "value": judgement.value,
                "explanation": judgement.explanation,
                "feedback": judgement.feedback,
            }

    def ask_judge(self, messages: list[Message]) -> Reply:
        assert self.sc.judge is not None
        return self.sc.asker.ask(self.sc.judge, messages, [], temperature=0.0, purpose="judge")[0]

    def judge(self, siblings: list[Pending]) -> list[V.Judgement | None]:
        """One judge call for children of the same node: the plain prompt for one, a comparison for several."""
        first = siblings[0].node
        history = [n.action for n in self.tree.path(first.id)[1:-1]]
        tried = [(p.node.action, "\n".join(obs.output for _, obs in p.outcome.results)) for p in siblings]
        if len(tried) == 1:
            messages = V.judge_messages(self.sc.task, history, *tried[0], first.depth)
        else:
            messages = V.compare_messages(self.sc.task, history, tried, first.depth)
        judgements, _ = V.ask_judge(self.ask_judge, messages, len(tried))
        return judgements

    # -- the end ---------------------------------------------------------------------------------

    def finalize(self, stop_reason: str) -> SearchResult:
        """Choose a node, leave the workspace on it, record the alternatives and the tree."""
        tree = self.tree
        tree.stop_reason = stop_reason
        can_choose = self.sc.judge is not None and self.budget.calls_left() > 0
        chosen, alternatives = final.pick(tree, self.patch_of, self.ask_judge if can_choose else None, self.sc.task)
        tree.chosen, tree.alternatives = chosen.id, [n.id for n in alternatives]
        self.restore(chosen)
        self.sc.bus.emit(SearchDone(strategy=tree.strategy, chosen=chosen.id, alternatives=tree.alternatives,
                                    nodes=len(tree.nodes), stop_reason=stop_reason))  # fmt: skip
        self.save()
        status, summary = final.verdict(chosen, stop_reason, out_of_budget=self.exhausted is not None)
        return SearchResult(status=status, summary=summary, chosen=chosen, tree=tree, checks=chosen.checks,
                            messages=tree.conversation(chosen.id))  # fmt: skip

    # -- feedback, events, persistence -------------------------------------------------------------

    def hindsight(self, node: Node) -> str | None:
        """What the earlier children of `node` tried and how it went, so the next try differs (SWE-Search)."""
        tried = [self.tree.nodes[c] for c in node.children]
        if not tried:
            return None
        lines = []
        for child in tried:
            verdict = {"duplicate": "a repeat of an earlier attempt"}.get(child.status, f"reward {child.reward:.2f}")
            note = (child.judge or {}).get("feedback") or short_outcome(child)
            lines.append(f"- {child.action} → {verdict}" + (f"; {note}" if note else ""))
        return (
            "Note: you are back at an earlier point of the task. These attempts were already made from here; "
            "do something different and better:\n" + "\n".join(lines)
        )

    def emit_node(self, node: Node) -> None:
        self.sc.bus.emit(
            SearchNode(
                node=node.id,
                parent=node.parent,
                depth=node.depth,
                action=node.action,
                kind=node.kind,
                reward=node.reward,
                visits=node.visits,
                status=node.status,
            )
        )

    def save(self) -> None:
        if self.sc.tree_path is not None:
            self.tree.save(self.sc.tree_path)
