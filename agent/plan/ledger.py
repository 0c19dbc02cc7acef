"""The progress ledger: after each step, is the subgoal done, is the agent looping, is it getting anywhere?"""

from __future__ import annotations

from dataclasses import dataclass, field

from branchwise.agent.record.events import Progress, ToolCallRecord
from branchwise.agent.record.normalise import normalise
from branchwise.tools import Observation

LOOP_NUDGE = (
    "You repeated an earlier action and got the same result as before. That will not help: try a different "
    "approach, look at something you have not looked at yet, or re-read the error."
)


@dataclass
class Ledger:
    """Counts, per subgoal, steps without progress and failures in a row; decides continue, advance or re-plan.

    Looping and progress are judged on the same observations, with their volatile parts (timings, clock times,
    addresses) masked: a step that repeats an earlier action and gets the same result is never progress, even if
    a file changed on the way (a test run that rewrites a cache), so the verdict does not depend on how loaded
    the machine is. Without `replan` (no planner to ask) a stall only nudges the model.
    """

    stall_limit: int
    failure_limit: int
    replan: bool = True
    steps: int = 0
    stalled: int = 0
    failures: int = 0
    seen: set[tuple[str, str, str]] = field(default_factory=set)

    def assess(
        self,
        index: int,
        title: str,
        results: list[tuple[ToolCallRecord, Observation]],
        *,
        malformed: bool,
        files_changed: bool,
        done: bool,
    ) -> Progress:
        """One step's verdict. Done wins; then a re-plan when stalled, failing or out of steps."""
        self.steps += 1
        keys = [(call.name, call.args_key(), normalise(obs.output)) for call, obs in results]
        looping = bool(keys) and all(k in self.seen for k in keys)
        self.seen.update(keys)
        failed = malformed or (bool(results) and all(obs.is_error for _, obs in results))
        self.failures = self.failures + 1 if failed else 0
        learned = any(not obs.is_error for _, obs in results)
        progressing = not looping and (files_changed or learned)
        self.stalled = 0 if progressing else self.stalled + 1
        decision, reason = self._decide(done, looping, progressing)
        return Progress(
            subgoal=index,
            title=title,
            done=done,
            looping=looping,
            progressing=progressing,
            stalled_steps=self.stalled,
            failures=self.failures,
            decision=decision,
            reason=reason,
        )

    def _decide(self, done: bool, looping: bool, progressing: bool) -> tuple[str, str]:
        if done:
            return "advance", "the subgoal's check passes"
        if self.replan and self.stalled >= self.stall_limit:
            return "replan", f"no progress in {self.stalled} steps" + (" (repeating itself)" if looping else "")
        if self.replan and self.failures >= self.failure_limit:
            return "replan", f"{self.failures} failed steps in a row"
        if looping:
            return "continue", "the same action gave the same result again"
        return "continue", "progress" if progressing else f"no progress for {self.stalled} step(s)"
