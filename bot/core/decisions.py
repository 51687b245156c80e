"""The one decision path: buttons, the modal, slash commands, rules and expiry all decide through `Decider`.

A decision is journaled first (`Decider.accept`, one short write before Slack is acknowledged), then carried out
(`Decider.carry`): checked, claimed atomically in the database (pending → deciding) and sent to LeadLex, so however
many people, clicks, surfaces or processes act at once, LeadLex gets one call per decision. If the process dies on
the way, another takes the decision over (bot.core.keeper) and resumes it; only a decision LeadLex refuses is handed
back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.core.apply import StateApplier
from bot.core.approvers import Approvers, Verdict
from bot.core.keeper import Leases, NotRecorded
from bot.db.store import Audit, DecisionRow, Store, TaskRow, utcnow
from bot.errors import LexiError, NotFound, NotPending
from bot.lexi.client import LexiClient
from bot.lexi.models import DISMISS_REASONS, Task, TaskState
from bot.ops.metrics import Metrics
from bot.slack import blocks
from bot.slack.answers import teller
from bot.slack.messenger import Messenger, slack_error_text
from bot.slack.texts import NO_RECORD, NOT_RECORDED, PAST, failure_note, who_decided

log = logging.getLogger(__name__)

Tell = Callable[[str], None]

#: Takeovers after which a decision that keeps failing inside the bot is handed back rather than retried again.
MAX_ATTEMPTS = 5
#: Seconds a decision waits for its task's announcement to be recorded. A card is visible in Slack a moment before
#: the bot has recorded its message (the post's answer is on its way back): a click in that moment is carried out
#: once it is recorded, instead of being told "still waiting for a decision".
ANNOUNCE_WAIT = 3.0

#: Who decides a task nobody decided in time (bot.core.reminders): the actor of its journaled decision.
EXPIRY_ACTOR = "rule:expiry"
#: The start of the dismiss note LeadLex gets for an expired task; the policy's expiry follows.
EXPIRY_DISMISS_NOTE = "expired — not decided within "

_TARGET = {"approve": TaskState.APPROVED, "dismiss": TaskState.DISMISSED}


@dataclass(frozen=True)
class Outcome:
    """What a decision attempt came to."""

    decided: bool
    state: str | None
    message: str
    closed: bool = False  # the journaled decision was closed with the outcome (nothing left to close)


def expiry_note(within: str, *, dismissed: bool) -> str:
    """What an expired task's card says under "Expired — not decided" (`within`: the policy's expiry, in words)."""
    return f"Nobody decided within {within}." + (" It was dismissed in LeadLex." if dismissed else "")


def reason_text(reason: str | None, note: str | None) -> str | None:
    """The dismiss reason sent to LeadLex: a documented code, then the free-text note."""
    note = (note or "").strip()
    if reason and note:
        return f"{reason}: {note}"
    return reason or (note or None)


class Decider:
    """Decides tasks: claim, call LeadLex once, record, update the card, tell the person."""

    def __init__(
        self,
        store: Store,
        lexi: LexiClient,
        messenger: Messenger,
        *,
        approvers: Approvers | None = None,
        orphaned_before: datetime | None = None,
        on_decided: Callable[[str], None] | None = None,
        metrics: Metrics | None = None,
        leases: Leases | None = None,
        background: Callable[..., object] | None = None,
        resume: Callable[[DecisionRow], object] | None = None,
    ) -> None:
        #: Called with the deciding user after each decision this process claimed has its outcome recorded.
        self.on_decided = on_decided
        #: Runs a card update beside the LeadLex call (the runtime's workers); None: the card is updated after it.
        self.background = background
        #: Carries out a decision taken over from a dead process (the runtime queues it on its workers); by default
        #: at once, here.
        self.resume: Callable[[DecisionRow], object] = resume or self.carry
        self.leases = leases or Leases(store)
        self._store = store
        self._lexi = lexi
        self._messenger = messenger
        self.approvers = approvers
        self._orphaned_before = orphaned_before
        self._metrics = metrics
        #: Records a state LeadLex reports instead of this decision's outcome, and shows it.
        self._applier = StateApplier(store, messenger, sync_card=self._sync)

    def permission(
        self,
        user: str,
        task_type: str | None = None,
        action: str | None = None,
        channel: str | None = None,
        *,
        cached_only: bool = False,
    ) -> Verdict:
        """Say whether `user` may decide tasks of `task_type` (None: some type) announced in `channel` by `action`.

        `cached_only`: by what is known now, without asking Slack (a membership not known makes it unknown).
        """
        if self.approvers is None:
            return Verdict(allowed=True)
        return self.approvers.check(user, task_type, action, channel, cached_only=cached_only)

    def may_decide(
        self, user: str, task_type: str | None = None, action: str | None = None, channel: str | None = None
    ) -> bool:
        """Whether `user` may decide tasks of `task_type` (None: some type) by `action` (None: either)."""
        return self.permission(user, task_type, action, channel).allowed

    def may_decide_row(self, user: str, row: TaskRow, action: str | None = None) -> Verdict:
        """Say whether `user` may decide this recorded task (its type, in the channel its card is in).

        Once the task was escalated, the people it was escalated to may decide it too.
        """
        return self._verdict(user, row.task.type, action, row.channel, escalated=row.escalated_at is not None)

    def _verdict(
        self,
        user: str,
        task_type: str,
        action: str | None,
        channel: str | None,
        *,
        escalated: bool,
        cached_only: bool = False,
    ) -> Verdict:
        """`permission`, which the escalation's people pass too when the task was escalated (both fail closed)."""
        verdict = self.permission(user, task_type, action, channel, cached_only=cached_only)
        if verdict.allowed or not escalated or self.approvers is None:
            return verdict
        extra = self.approvers.check_escalated(user, task_type, cached_only=cached_only)
        if extra.allowed:
            return extra
        return Verdict(allowed=False, unknown=verdict.unknown or extra.unknown)

    def refusal(
        self,
        task_type: str | None = None,
        action: str = "approve",
        channel: str | None = None,
        verdict: Verdict | None = None,
        *,
        escalated: bool = False,
    ) -> str:
        """What a person who may not decide is told, naming who may (or saying Slack could not tell).

        `escalated`: the task was escalated, so the people it was escalated to are named too.
        """
        if self.approvers is None:
            return "You may not decide this task."
        return self.approvers.refusal(task_type, action, channel, verdict, escalated=escalated)

    def decidable(
        self, user: str, tasks: list[tuple[Task, str]], escalated: Collection[str] = ()
    ) -> tuple[set[str], str | None]:
        """Of these (task, channel) pairs, the ids `user` may decide, and what to tell them about the others.

        `escalated`: the ids of the tasks that were escalated (their escalation's people may decide them too).
        """
        allowed: set[str] = set()
        refusal = unknown = None
        for task, channel in tasks:
            verdict = self._verdict(user, task.type, None, channel, escalated=task.id in escalated)
            if verdict.allowed:
                allowed.add(task.id)
            elif verdict.unknown:
                unknown = unknown or self.refusal(task.type, "approve", channel, verdict)
            else:
                refusal = refusal or self.refusal(task.type, "approve", channel, verdict)
        if unknown is not None:
            return allowed, unknown  # Slack could not say: that is what the person needs to know first
        if refusal is not None and allowed:
            return allowed, "Buttons are shown only on the tasks you may decide."
        return allowed, refusal

    def accept(
        self,
        task_id: str,
        *,
        action: str,
        user: str,
        surface: str,
        reason: str | None = None,
        note: str | None = None,
        reply: dict[str, Any] | None = None,
        sighting: tuple[str, datetime] | None = None,
    ) -> DecisionRow:
        """Journal a decision before Slack is acknowledged (one short write); NotRecorded when the database cannot.

        `reply` says how to answer the person (bot.slack.answers), from this process or one that takes the decision
        over. `sighting`: the request's replay key, remembered in the same write (Replayed when seen before).
        """
        if action not in _TARGET:
            raise ValueError(f"unknown action {action!r}")
        if reason is not None and reason not in DISMISS_REASONS:
            reason = None
        claim_at = None if surface == "rule" else self._claim_at(task_id, user, action)
        return self.leases.accept(
            task_id,
            actor=user,
            action=action,
            surface=surface,
            reason=reason,
            note=note,
            reply=reply,
            sighting=sighting,
            claim_at=claim_at,
        )

    def _claim_at(self, task_id: str, user: str, action: str) -> int | None:
        """The version of the task's record to claim it at in the journal's write, or None to check and claim later.

        Only when the record is pending, no quorum waits, and the person may take `action` by what is known now
        (a membership Slack would have to be asked for is checked later, when the decision is carried out): then
        the LeadLex call follows the acknowledgement without another write. NotRecorded when the database cannot
        be read, at the first try: Slack's deadline runs (nothing could be journaled either).
        """
        try:
            row = self._store.get_now(task_id)
        except Exception as exc:
            log.warning("could not read task %s to record a decision: %s", task_id[:100], type(exc).__name__)
            raise NotRecorded(type(exc).__name__) from exc
        if row is None or row.state != TaskState.PENDING:
            return None
        if action == "approve" and self.approvals_needed(row.task) > 1:
            return None
        escalated = row.escalated_at is not None
        verdict = self._verdict(user, row.task.type, action, row.channel, escalated=escalated, cached_only=True)
        return row.version if verdict.allowed else None

    def decide(
        self,
        task_id: str,
        *,
        action: str,
        user: str,
        surface: str,
        tell: Tell,
        reason: str | None = None,
        note: str | None = None,
        by_rule: bool = False,
    ) -> Outcome:
        """Approve or dismiss a task for `user` now (journaled, then carried out); `tell` answers them privately.

        `by_rule`: a policy rule decides (auto-approval, surface "rule"), so no approver check and no quorum apply.
        """
        try:
            decision = self.accept(
                task_id, action=action, user=user, surface="rule" if by_rule else surface, reason=reason, note=note
            )
        except NotRecorded:
            return self._say(tell, None, NOT_RECORDED)
        return self.carry(decision, tell)

    def expire(self, task_id: str, within: str, *, dismiss: bool = False) -> Outcome:
        """Expire a task nobody decided within `within` (the policy's expiry, in words).

        Its card says "expired — not decided", never "dismissed". `dismiss`: also dismiss it in LeadLex, as a
        decision of EXPIRY_ACTOR through the one decision path (journaled, claimed, one LeadLex call, recorded), so
        a click at the same moment or a second process never makes LeadLex get two calls.
        Without it, the record alone changes (one conditional UPDATE).
        """
        if not dismiss:
            row = self._store.expire(task_id, expiry_note(within, dismissed=False))
            if row is None:
                return Outcome(decided=False, state=None, message="Decided at the last moment.")
            self._sync(task_id)
            return Outcome(decided=True, state=TaskState.EXPIRED, message="Task expired.")
        return self.decide(
            task_id,
            action="dismiss",
            user=EXPIRY_ACTOR,
            surface="rule",
            by_rule=True,
            reason="not_relevant",
            note=f"{EXPIRY_DISMISS_NOTE}{within}",
            tell=lambda text: log.info("expiry of %s: %s", task_id, text),
        )

    def carry(self, decision: DecisionRow, tell: Tell | None = None) -> Outcome:
        """Carry out a journaled decision (fresh, or taken over from a process that died), then close it.

        An unexpected failure (the database went away) leaves it open: its lease runs out and it is resumed.
        """
        tell = tell or self._teller(decision)
        self.leases.hold(decision.id)
        try:
            if decision.attempts > MAX_ATTEMPTS:
                outcome = self._give_up(decision, tell)
            elif decision.claimed is not None:  # claimed with its journal entry, here: straight to LeadLex
                outcome = self._carry_claimed(decision, decision.claimed, tell)
            elif decision.stage == "claimed":
                outcome = self._resume(decision, tell)
            else:
                outcome = self._decide(decision, tell)
            if not outcome.closed:
                self._store.close_decision(decision.id)
            return outcome
        finally:
            self.leases.drop(decision.id)

    def close(self, decision: DecisionRow) -> None:
        """Close a journaled decision that was answered without being carried out (nobody resumes it)."""
        try:
            self._store.close_decision(decision.id)
        finally:
            self.leases.drop(decision.id)

    def _decide(self, decision: DecisionRow, tell: Tell) -> Outcome:
        """Check, count and claim an accepted decision, then carry it out."""
        task_id, action, user, surface = decision.task_id, decision.action, decision.actor, decision.surface
        by_rule = surface == "rule"
        current = self._before_claim(decision, tell)
        if isinstance(current, Outcome):
            return current
        won, row = self._store.claim_decision(
            task_id,
            actor=user,
            action=action,
            surface=surface,
            reason=decision.reason,
            note=decision.note,
            decision_id=decision.id,
        )
        if row is None:
            return self._say(tell, None, f"I have no record of task `{blocks.escape(task_id)}`.")
        if not won:
            return self._say(tell, row.state, who_decided(row))
        if not by_rule and (row.task.type, row.channel) != (current.task.type, current.channel):
            # The record changed between the check and the claim: the task actually claimed decides.
            refused = self._refuse(row, user, action, surface, tell)
            if refused is not None:
                self._store.release_decision(task_id, None)
                self._sync(task_id)
                return refused
        return self._carry_claimed(decision, row, tell)

    def _carry_claimed(self, decision: DecisionRow, claimed: TaskRow, tell: Tell) -> Outcome:
        """Carry out a decision whose claim this process just made (`claimed`: the record as the claim left it)."""
        try:
            return self._carry_out(
                decision.task_id,
                decision.action,
                decision.actor,
                decision.surface,
                tell,
                reason=decision.reason,
                note=decision.note,
                claimed=claimed,
                decision_id=decision.id,
            )
        finally:
            if decision.actor != EXPIRY_ACTOR:  # an expiry is nobody's decision: no Home to refresh
                self._after_decision(decision.actor)

    def _before_claim(self, decision: DecisionRow, tell: Tell) -> TaskRow | Outcome:
        """The task's record to claim, or what stops the decision first (no record, a refusal, a quorum to wait for)."""
        task_id, action, user, surface = decision.task_id, decision.action, decision.actor, decision.surface
        by_rule = surface == "rule"
        current = self._announced(task_id)
        if current is None:
            # Nothing to check a permission against: never guess "some type" and claim what appears meanwhile.
            return self._say(tell, None, f"I have no record of task `{blocks.escape(task_id)}`.")
        if not by_rule:
            refused = self._refuse(current, user, action, surface, tell)
            if refused is not None:
                return refused
        if action == "approve" and not by_rule and current.state == TaskState.PENDING:
            waiting = self._count_approval(current, user, surface, tell, resumed=decision.resumed)
            if waiting is not None:
                return waiting
        return current

    def _announced(self, task_id: str) -> TaskRow | None:
        """The task's record, once its announcement is recorded (waited for briefly: see ANNOUNCE_WAIT)."""
        row = self._store.get(task_id)
        deadline = time.monotonic() + ANNOUNCE_WAIT
        while row is not None and row.state == TaskState.ANNOUNCING and time.monotonic() < deadline:
            time.sleep(0.05)
            row = self._store.get(task_id)
        return row

    def _resume(self, decision: DecisionRow, tell: Tell) -> Outcome:
        """Send again the LeadLex call of a claimed decision whose process died; the card says it resumed."""
        row = self._store.get(decision.task_id)
        if row is None or row.state != TaskState.DECIDING or row.decision_id != decision.id:
            state = row.state if row is not None else None
            return Outcome(
                decided=state in PAST, state=state, message="This decision was already carried out."
            )  # its outcome stands
        self._store.mark_resumed(row.task_id, decision.id)
        log.info(
            "task %s: resuming the %s by %s",
            row.task_id,
            row.action,
            row.actor,
            extra={"task_id": row.task_id, "slack_user": row.actor, "surface": row.surface},
        )
        try:
            outcome = self._carry_out(
                row.task_id,
                row.action or decision.action,
                row.actor or decision.actor,
                row.surface or decision.surface,
                tell,
                reason=row.reason,
                note=row.note,
                resumed=True,
                decision_id=decision.id,
            )
        finally:
            if (row.actor or decision.actor) != EXPIRY_ACTOR:
                self._after_decision(row.actor or decision.actor)
        if outcome.decided and decision.surface == "command":
            self._say(tell, outcome.state, f"Task `{blocks.escape(row.task_id)}` {outcome.state}.", decided=True)
        return outcome

    def _give_up(self, decision: DecisionRow, tell: Tell) -> Outcome:
        """A decision that failed inside the bot on every takeover: hand the task back and say so."""
        log.error(
            "task %s: giving up the %s after %d attempts",
            decision.task_id,
            decision.action,
            decision.attempts,
            extra={"task_id": decision.task_id},
        )
        note = "The last attempt could not be completed. Try again."
        row = self._store.get(decision.task_id)
        if row is not None and row.state == TaskState.DECIDING and row.decision_id == decision.id:
            self._store.release_decision(decision.task_id, note)
            self._sync(decision.task_id)
        return self._say(tell, TaskState.PENDING, f"Your decision could not be carried out. {note}")

    def _teller(self, decision: DecisionRow) -> Tell:
        """How to answer the person behind a journaled decision (the task's channel when the reply names none)."""

        def channel() -> str | None:
            row = self._store.get(decision.task_id)
            return row.channel if row is not None else None

        return teller(decision.reply, decision.actor, self._messenger, channel)

    def _refuse(self, row: TaskRow, user: str, action: str, surface: str, tell: Tell) -> Outcome | None:
        """Refuse (audited, told privately) when `user` may not take `action` on this task; None when they may."""
        verdict = self.may_decide_row(user, row, action)
        if verdict.allowed:
            return None
        why = "membership unknown" if verdict.unknown else "not allowed"
        log.info(
            "task %s: %s refused for %s (%s)",
            row.task_id,
            action,
            user,
            why,
            extra={"task_id": row.task_id, "slack_user": user, "surface": surface},
        )
        self._store.audit("refused", row.task_id, actor=user, surface=surface, detail=f"{action}: {why}")
        escalated = row.escalated_at is not None
        return self._say(tell, None, self.refusal(row.task.type, action, row.channel, verdict, escalated=escalated))

    def _carry_out(
        self,
        task_id: str,
        action: str,
        user: str,
        surface: str,
        tell: Tell,
        *,
        reason: str | None,
        note: str | None,
        resumed: bool = False,
        claimed: TaskRow | None = None,
        decision_id: int | None = None,
    ) -> Outcome:
        """Call LeadLex once for a decision this process holds, and record what came of it.

        The card shows "Approving…" beside the call, never before it: a slow Slack must not delay LeadLex.
        `claimed`: the record as the claim left it, which the card shows without reading it again. `decision_id`:
        the journaled decision, closed with its outcome when LeadLex accepted it (one write for both).
        """
        if self.background is not None:
            try:
                self.background(self._sync, task_id, claimed)
            except RuntimeError:  # the workers are shutting down: the card is updated after the call instead
                log.debug("task %s: no worker for the card update beside the call", task_id)
        context = {"task_id": task_id, "slack_user": user, "surface": surface}
        expiry = user == EXPIRY_ACTOR
        asked = "dismiss on expiry" if expiry else action
        started = time.monotonic()
        try:
            if action == "approve":
                self._lexi.approve(task_id)
            else:
                self._lexi.dismiss(task_id, reason_text(reason, note))
        except (NotPending, NotFound) as exc:
            self._answered(task_id, asked, started, exc)
            return self._resolve_refusal(task_id, action, user, exc, tell, resumed=resumed, note=note)
        except LexiError as exc:
            self._answered(task_id, asked, started, exc)
            if expiry:  # the task expired all the same: its card says so, and nobody is asked to decide it now
                log.warning("task %s: could not dismiss it on expiry: %s", task_id, exc)
                return self._expired(task_id, note)
            log.warning("task %s: %s failed: %s", task_id, action, exc, extra={**context, "request_id": exc.request_id})
            self._store.release_decision(task_id, failure_note(action, exc))
            self._sync(task_id)
            return self._say(tell, TaskState.PENDING, failure_note(action, exc))
        if expiry:
            self._answered(task_id, asked, started, None)
            return self._expired(task_id, note)
        answer = self._answered(task_id, asked, started, None, record=False)  # written with the outcome
        row = self._store.finish_decision(task_id, _TARGET[action], answer=answer, decision_id=decision_id)
        if self._metrics is not None:
            self._metrics.decided.labels(_TARGET[action], surface).inc()
        self._sync(task_id, row)
        log.info("task %s %s by %s via %s", task_id, _TARGET[action], user, surface, extra=context)
        state = row.state if row else _TARGET[action]
        return Outcome(decided=True, state=state, message=f"Task {_TARGET[action]}.", closed=decision_id is not None)

    def _answered(
        self, task_id: str, action: str, started: float, error: LexiError | None, *, record: bool = True
    ) -> Audit:
        """Record LeadLex's answer to a decision: its latency (not an expiry's, as before), and its audit event.

        `record`: write the event now; without it, the caller writes it with the outcome (Store.finish_decision).
        """
        if self._metrics is not None and action != "dismiss on expiry":
            self._metrics.decision_latency.observe(time.monotonic() - started)
        answer = "ok" if error is None else f"{error.status or '-'} {error.code or type(error).__name__}"
        event = Audit("leadlex_answer", actor="leadlex", detail=f"{action}: {answer}")
        if record:
            self._store.audit(event.event, task_id, actor=event.actor, detail=event.detail)
        return event

    def _expired(self, task_id: str, note: str | None) -> Outcome:
        """Record the outcome of an expiry's decision: the task expired (whatever LeadLex answered the dismissal)."""
        within = (note or "").removeprefix(EXPIRY_DISMISS_NOTE)
        row = self._store.expire(task_id, expiry_note(within, dismissed=True), deciding=True)
        self._sync(task_id)
        if row is None:
            return Outcome(decided=False, state=None, message="The expiry was already carried out.")
        return Outcome(decided=True, state=TaskState.EXPIRED, message="Task expired.")

    def _count_approval(
        self, row: TaskRow, user: str, surface: str, tell: Tell, *, resumed: bool = False
    ) -> Outcome | None:
        """With a quorum, record this approval; an Outcome while more are needed, None when it is time to act."""
        needed = self.approvals_needed(row.task)
        if needed <= 1:
            return None
        result, by = self._store.add_approval(row.task_id, user, needed, surface)
        if result == "not_pending":
            return None  # decided meanwhile: the claim says by whom
        if len(by) >= needed:
            by, unknown = self._still_approvers(row, by, needed)
            if unknown is None and len(by) >= needed:
                return None  # the quorum is complete, counting only people who may still approve: act
            self._sync(row.task_id)
            if unknown is not None:
                message = f"Your approval is recorded, but the task waits: {unknown}."
            else:
                message = (
                    f"Your approval is recorded: {len(by)} of {needed}; earlier approvals by people "
                    "who may no longer approve do not count. "
                    f"The task starts when {needed - len(by)} more approver(s) agree."
                )
        elif result == "duplicate" and not resumed:  # resumed: this very approval was counted before the crash
            message = f"You already approved this task: {len(by)} of {needed} approvals. Another approver is needed."
        else:
            self._sync(row.task_id)
            message = (
                f"Your approval is recorded: {len(by)} of {needed}. "
                f"The task starts when {needed - len(by)} more approver(s) agree."
            )
        return self._say(tell, TaskState.PENDING, message)

    def _still_approvers(self, row: TaskRow, by: list[str], needed: int) -> tuple[list[str], str | None]:
        """The counted approvers who may still approve, asked of Slack afresh (the others' approvals are withdrawn).

        And, when Slack could not say for someone, why (their approval is kept, but the quorum is not complete).
        """
        if self.approvers is None:
            return by, None
        self.approvers.forget_for(row.task.type, "approve", row.channel)
        verdicts = {user: self.may_decide_row(user, row, "approve") for user in by}
        unknown = next(
            (
                f"I could not check who may approve: {v.unknown}. Try again in a moment"
                for v in verdicts.values()
                if v.unknown
            ),
            None,
        )
        gone = [user for user, v in verdicts.items() if not v.allowed and not v.unknown]
        if gone:
            log.info(
                "task %s: approvals by %s no longer count (they may no longer approve)",
                row.task_id,
                ", ".join(gone),
                extra={"task_id": row.task_id},
            )
            by = self._store.withdraw_approvals(row.task_id, gone, needed)
        return by, unknown

    def approvals_needed(self, task: Task) -> int:
        """Distinct approvals a task needs under the policy (1 without one)."""
        if self.approvers is None:
            return 1
        return self.approvers.policy.for_type(task.type).approvals_needed(task.affected_count)

    def _after_decision(self, user: str) -> None:
        """Run the `on_decided` hook for the deciding user; a failure is logged, never raised."""
        if self.on_decided is None:
            return
        try:
            self.on_decided(user)
        except Exception:
            log.exception("the after-decision hook failed for %s", user)

    def recover(self, _still_pending: object = None, older_than: timedelta = timedelta(minutes=3)) -> None:
        """Resume decisions whose process died: journal claims left without one, then take over expired leases.

        Nothing is handed back here: a resumed decision is sent to LeadLex again, and only LeadLex's refusal
        returns the buttons. On SQLite, claims made before this process started are orphans whatever their age.
        """
        if self._orphaned_before is not None:
            older_than = min(older_than, max(utcnow() - self._orphaned_before, timedelta(0)))
        self._store.adopt_stale_decisions(older_than)
        for decision in self.leases.take_over():
            self.resume(decision)

    def _resolve_refusal(
        self,
        task_id: str,
        action: str,
        user: str,
        exc: LexiError,
        tell: Tell,
        *,
        resumed: bool = False,
        note: str | None = None,
    ) -> Outcome:
        """LeadLex says the task is not pending (or gone): learn its real state and show that.

        An expiry whose dismissal LeadLex refused expires all the same, unless LeadLex holds another outcome.
        """
        target = _TARGET[action]
        expiry = user == EXPIRY_ACTOR
        try:
            real = None if isinstance(exc, NotFound) else self._lexi.find_task(task_id)
        except LexiError as lookup_error:
            log.warning("task %s: could not read its real state: %s", task_id, lookup_error)
            if expiry:
                return self._expired(task_id, note)
            self._store.release_decision(task_id, f"Could not {action}: LeadLex refused and its state is unknown.")
            self._sync(task_id)
            return self._say(tell, TaskState.PENDING, "LeadLex refused the decision; please try again later.")
        state = real.status if real is not None else TaskState.GONE
        if expiry and (state == TaskState.PENDING or (state == target and (exc.attempts > 1 or resumed))):
            return self._expired(task_id, note)  # not dismissed (or this very dismissal landed): it expired
        if state == TaskState.PENDING:
            note = f"Could not {action}: LeadLex refused ({exc})."
            self._store.release_decision(task_id, note)
            self._sync(task_id)
            return self._say(tell, TaskState.PENDING, note)
        ran_on = target == TaskState.APPROVED and state in (
            TaskState.COMPLETED,
            TaskState.FAILED,
        )  # approved, then it already ran
        if (state == target or ran_on) and (exc.attempts > 1 or resumed):
            # An earlier attempt of this very decision (a retry, or the call of a process that died) landed
            # before its answer was lost: it stays this person's decision.
            self._store.finish_decision(task_id, target)
            if ran_on:
                self._applier.apply(task_id, state, from_states=(target,))
            self._sync(task_id)
            return Outcome(decided=True, state=target, message=f"Task {target}.")
        if self._applier.apply(task_id, state, from_states=(TaskState.DECIDING,)) is None:
            self._sync(task_id)  # moved on meanwhile: the card still shows what it is
        return self._say(
            tell, state, f"This task was already {PAST.get(state, state)} in LeadLex; its card now says so."
        )

    def _sync(self, task_id: str, row: TaskRow | None = None) -> None:
        """Update the card (from `row`, the record as a transaction just left it, when given); failures are logged.

        A Slack failure here is repaired by the poller later.
        """
        try:
            self._messenger.sync_card(task_id, row)
        except SlackApiError as exc:
            log.warning("task %s: could not update its card: %s", task_id, slack_error_text(exc))
        except Exception:
            log.exception("task %s: could not update its card", task_id)

    @staticmethod
    def _say(tell: Tell, state: str | None, message: str, *, decided: bool = False) -> Outcome:
        """Tell the person and return the outcome."""
        try:
            tell(message)
        except Exception:
            log.exception("could not tell the user: %s", message)
        return Outcome(decided=decided, state=state, message=message)

    def check(self, task_id: str, user: str, action: str, surface: str) -> Check:
        """May `user` take `action` on this recorded task now, and what to tell them when not.

        For a form opened before the decision (it is checked again when carried out). A refusal is audited;
        a database failure is raised for the caller to answer.
        """
        row = self._store.get(task_id)
        if row is None:
            return Check(allowed=False, row=None, message=NO_RECORD)
        verdict = self.may_decide_row(user, row, action)
        if not verdict.allowed:
            why = "membership unknown" if verdict.unknown else "not allowed"
            self._store.audit("refused", task_id, actor=user, surface=surface, detail=f"{action} form: {why}")
            message = self.refusal(row.task.type, action, row.channel, verdict, escalated=row.escalated_at is not None)
            return Check(allowed=False, row=row, message=message)
        if row.state not in (TaskState.PENDING, TaskState.ANNOUNCING):  # announcing: its card is out, being recorded
            return Check(allowed=False, row=row, message=who_decided(row))
        return Check(allowed=True, row=row, message=None)


@dataclass(frozen=True)
class Check:
    """Whether someone may decide a task now (`Decider.check`): its record, and what to tell them when not."""

    allowed: bool
    row: TaskRow | None
    message: str | None
