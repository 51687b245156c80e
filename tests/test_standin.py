"""The Slack stand-in, driven by the real slack_sdk client and a real Bolt app over loopback."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from slack_bolt import App, BoltRequest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from bot.dev.standin.payloads import (
    build_app_home_opened,
    build_block_action,
    build_slash_command,
    build_view_submission,
    encode_command,
    encode_event,
    encode_interactive,
    sign,
    signed_request,
)
from bot.dev.standin.slack import SlackStandIn, validate_blocks

TOKEN = "xoxb-test-token"
SECRET = "test-signing-secret"
CHANNEL = "C0LEXI"
START = 1_763_900_000.0

SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "Lexi wants to start a campaign"}}
MODAL = {"type": "modal", "title": {"type": "plain_text", "text": "Dismiss"}, "blocks": [SECTION]}
HOME = {"type": "home", "blocks": [SECTION]}


class FakeClock:
    """A clock that only moves when a test advances it."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        """Return the current fake time."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the fake time forward."""
        self.now += seconds


@pytest.fixture
def fake_clock() -> FakeClock:
    """A hand-driven clock for the stand-in."""
    return FakeClock()


@pytest.fixture
def standin(fake_clock: FakeClock) -> Iterator[SlackStandIn]:
    """A running stand-in on a free loopback port, stopped after the test."""
    server = SlackStandIn(clock=fake_clock).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(standin: SlackStandIn) -> WebClient:
    """A real slack_sdk client pointed at the stand-in."""
    return WebClient(token=TOKEN, base_url=standin.api_url, timeout=5)


def slack_error(call: Any) -> SlackApiError:
    """Run a failing Web API call and return the SlackApiError it raised."""
    with pytest.raises(SlackApiError) as caught:
        call()
    return caught.value


def error_of(call: Any) -> str:
    """Run a failing Web API call and return Slack's error code."""
    return str(slack_error(call).response["error"])


def raw_post(url: str, body: bytes, content_type: str | None) -> tuple[int, dict[str, Any]]:
    """POST raw bytes with urllib and return the status and decoded JSON answer, error statuses included."""
    request = urllib.request.Request(url, data=body, method="POST")  # noqa: S310 - the stand-in's loopback URL
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - the stand-in's loopback URL
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def post_block(text: str = "task") -> list[dict[str, Any]]:
    """A one-section message body."""
    return [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]


# ----- messages -----


def test_auth_test_names_the_bot_user(client: WebClient) -> None:
    """auth.test answers with the bot user, bot id and team."""
    answer = client.auth_test()
    assert (answer["user_id"], answer["bot_id"], answer["team_id"]) == ("UBOT", "B0LEXI", "T0001")


def test_history_returns_metadata_only_when_asked(client: WebClient, standin: SlackStandIn) -> None:
    """A posted message comes back from history with its metadata only when include_all_metadata is set."""
    metadata = {"event_type": "lexi_task_announced", "event_payload": {"task_id": "t-1"}}
    posted = client.chat_postMessage(channel=CHANNEL, text="task t-1", blocks=post_block(), metadata=metadata)
    plain = client.conversations_history(channel=CHANNEL)["messages"]
    full = client.conversations_history(channel=CHANNEL, include_all_metadata=True)["messages"]
    assert [m["ts"] for m in plain] == [posted["ts"]]
    assert "metadata" not in plain[0]
    assert full[0]["metadata"] == metadata
    assert (full[0]["user"], full[0]["blocks"]) == ("UBOT", post_block())
    assert standin.message(CHANNEL, posted["ts"]).metadata == metadata  # type: ignore[union-attr]


def test_form_encoded_post_parses_json_strings(standin: SlackStandIn) -> None:
    """Blocks and metadata sent as JSON strings in a form body are parsed like JSON values."""
    form = {
        "token": TOKEN,
        "channel": CHANNEL,
        "text": "t",
        "blocks": json.dumps(post_block()),
        "metadata": json.dumps({"event_type": "e", "event_payload": {"id": 1}}),
    }
    body, content_type = encode_command(form)
    status, answer = raw_post(standin.api_url + "chat.postMessage", body, content_type)
    assert status == 200 and answer["ok"]
    message = standin.message(CHANNEL, answer["ts"])
    assert (
        message is not None
        and message.blocks == post_block()
        and message.metadata
        == {
            "event_type": "e",
            "event_payload": {"id": 1},
        }
    )


def test_update_rewrites_message_and_keeps_metadata(client: WebClient, standin: SlackStandIn) -> None:
    """chat.update replaces text and blocks, counts the edit and keeps metadata it was not given."""
    metadata = {"event_type": "lexi_task_announced", "event_payload": {"task_id": "t-2"}}
    posted = client.chat_postMessage(channel=CHANNEL, text="pending", blocks=post_block(), metadata=metadata)
    ts = posted["ts"]
    client.chat_update(channel=CHANNEL, ts=ts, text="approved", blocks=post_block("Approved by <@UALICE>"))
    message = standin.message(CHANNEL, ts)
    assert message is not None
    assert (message.text, message.blocks) == ("approved", post_block("Approved by <@UALICE>"))
    assert message.edits == 1
    assert message.metadata == metadata
    history = client.conversations_history(channel=CHANNEL, include_all_metadata=True)["messages"]
    assert history[0]["text"] == "approved" and history[0]["metadata"] == metadata


def test_update_refuses_other_peoples_and_unknown_messages(client: WebClient, standin: SlackStandIn) -> None:
    """chat.update refuses a person's message (cant_update_message) and an unknown ts (message_not_found)."""
    theirs = standin.add_message(CHANNEL, "hello", user="UBOB")
    refused = error_of(lambda: client.chat_update(channel=CHANNEL, ts=theirs.ts, text="x"))
    assert refused == "cant_update_message"
    assert error_of(lambda: client.chat_update(channel=CHANNEL, ts="1.1", text="x")) == "message_not_found"


def test_history_paginates_newest_first(client: WebClient) -> None:
    """History pages newest first with has_more and next_cursor until every message was seen once."""
    posted = [client.chat_postMessage(channel=CHANNEL, text=f"m{i}")["ts"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        page = client.conversations_history(channel=CHANNEL, limit=2, cursor=cursor)
        seen += [m["ts"] for m in page["messages"]]
        cursor = page["response_metadata"]["next_cursor"]
        assert page["has_more"] == bool(cursor)
        if not cursor:
            break
    assert seen == posted[::-1]
    assert error_of(lambda: client.conversations_history(channel=CHANNEL, cursor="bogus")) == "invalid_cursor"


def test_history_honours_oldest_latest_and_inclusive(client: WebClient) -> None:
    """oldest/latest bound history, excluding the bounds unless inclusive is set."""
    ts = [client.chat_postMessage(channel=CHANNEL, text=f"m{i}")["ts"] for i in range(4)]
    between = client.conversations_history(channel=CHANNEL, oldest=ts[0], latest=ts[3])["messages"]
    assert [m["ts"] for m in between] == [ts[2], ts[1]]
    inclusive = client.conversations_history(channel=CHANNEL, oldest=ts[0], latest=ts[3], inclusive=True)
    assert [m["ts"] for m in inclusive["messages"]] == ts[::-1]


def test_thread_replies_stay_out_of_history(client: WebClient, standin: SlackStandIn) -> None:
    """Thread replies are listed by conversations.replies, counted on the parent, and absent from history."""
    parent = client.chat_postMessage(channel=CHANNEL, text="parent")["ts"]
    reply = client.chat_postMessage(channel=CHANNEL, text="reply", thread_ts=parent)["ts"]
    history = client.conversations_history(channel=CHANNEL)["messages"]
    assert [m["ts"] for m in history] == [parent] and history[0]["reply_count"] == 1
    thread = client.conversations_replies(channel=CHANNEL, ts=parent)["messages"]
    assert [m["ts"] for m in thread] == [parent, reply]
    assert [m.ts for m in standin.replies(CHANNEL, parent)] == [reply]
    assert [m.ts for m in standin.messages(CHANNEL)] == [parent, reply]
    orphan = error_of(lambda: client.chat_postMessage(channel=CHANNEL, text="x", thread_ts="9.9"))
    assert orphan == "thread_not_found"


def test_post_errors_match_slack(client: WebClient, standin: SlackStandIn) -> None:
    """Unknown channel, missing membership, empty and overlong messages fail with Slack's error codes."""
    assert error_of(lambda: client.chat_postMessage(channel="CNOPE", text="x")) == "channel_not_found"
    with pytest.warns(UserWarning, match="text"):
        assert error_of(lambda: client.chat_postMessage(channel=CHANNEL)) == "no_text"
    assert error_of(lambda: client.chat_postMessage(channel=CHANNEL, text="x" * 40_001)) == "msg_too_long"
    standin.remove_bot_from(CHANNEL)
    assert error_of(lambda: client.chat_postMessage(channel=CHANNEL, text="x")) == "not_in_channel"
    assert error_of(lambda: client.conversations_history(channel=CHANNEL)) == "not_in_channel"
    assert standin.messages(CHANNEL) == []


def test_concurrent_posts_get_unique_increasing_ts(client: WebClient, standin: SlackStandIn) -> None:
    """Posts from many threads at once are all stored, each with its own ts, in ts order."""

    def post_ten(worker: int) -> None:
        """Post ten messages from one thread."""
        for i in range(10):
            client.chat_postMessage(channel=CHANNEL, text=f"{worker}-{i}")

    workers = [threading.Thread(target=post_ten, args=(n,)) for n in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=10)
    stored = standin.messages(CHANNEL)
    assert len(stored) == 80 and len({m.ts for m in stored}) == 80
    assert [m.ts for m in stored] == sorted(m.ts for m in stored)
    assert len(standin.calls_to("chat.postMessage")) == 80


def test_wrong_token_is_invalid_auth(standin: SlackStandIn) -> None:
    """A token other than the bot's is refused with invalid_auth and changes nothing."""
    stranger = WebClient(token="xoxb-wrong", base_url=standin.api_url, timeout=5)
    assert error_of(lambda: stranger.chat_postMessage(channel=CHANNEL, text="x")) == "invalid_auth"
    assert standin.messages(CHANNEL) == []
    assert standin.calls_to("chat.postMessage")[0].error == "invalid_auth"


def test_unknown_method_is_refused(client: WebClient) -> None:
    """A method the stand-in does not know answers unknown_method."""
    assert error_of(lambda: client.api_call("chat.scheduleTeleport")) == "unknown_method"


def _button(**overrides: Any) -> dict[str, Any]:
    """A valid button with some fields overridden."""
    return {"type": "button", "text": _plain("Approve"), "action_id": "a", **overrides}


def _confirm(**overrides: Any) -> dict[str, Any]:
    """A valid confirm dialog with some fields overridden."""
    fields = {"title": "Sure?", "text": "Emails go out.", "confirm": "Launch", "deny": "Back"}
    fields.update(overrides)
    return {key: _mrkdwn(value) if key == "text" else _plain(value) for key, value in fields.items()}


def _plain(text: str) -> dict[str, str]:
    """A plain_text object."""
    return {"type": "plain_text", "text": text}


def _mrkdwn(text: str) -> dict[str, str]:
    """A mrkdwn text object."""
    return {"type": "mrkdwn", "text": text}


OVER_LIMIT: dict[str, list[dict[str, Any]]] = {
    "51 blocks": [{"type": "divider"}] * 51,
    "header over 150": [{"type": "header", "text": _plain("h" * 151)}],
    "header in mrkdwn": [{"type": "header", "text": _mrkdwn("h")}],
    "section text over 3000": [{"type": "section", "text": _mrkdwn("s" * 3001)}],
    "11 section fields": [{"type": "section", "fields": [_mrkdwn("f")] * 11}],
    "section field over 2000": [{"type": "section", "fields": [_mrkdwn("f" * 2001)]}],
    "26 action elements": [{"type": "actions", "elements": [_button(action_id=f"a{i}") for i in range(26)]}],
    "11 context elements": [{"type": "context", "elements": [_mrkdwn("c")] * 11}],
    "context text over 3000": [{"type": "context", "elements": [_mrkdwn("c" * 3001)]}],
    "button text over 75": [{"type": "actions", "elements": [_button(text=_plain("b" * 76))]}],
    "button value over 2000": [{"type": "actions", "elements": [_button(value="v" * 2001)]}],
    "action_id over 255": [{"type": "actions", "elements": [_button(action_id="a" * 256)]}],
    "button url over 3000": [{"type": "actions", "elements": [_button(url="https://x/" + "u" * 2991)]}],
    "confirm title over 100": [{"type": "actions", "elements": [_button(confirm=_confirm(title="t" * 101))]}],
    "confirm text over 300": [{"type": "actions", "elements": [_button(confirm=_confirm(text="t" * 301))]}],
    "confirm over 30": [{"type": "actions", "elements": [_button(confirm=_confirm(confirm="c" * 31))]}],
    "deny button over 30": [{"type": "actions", "elements": [_button(confirm=_confirm(deny="d" * 31))]}],
    "confirm style not primary or danger": [
        {"type": "actions", "elements": [_button(confirm={**_confirm(), "style": "loud"})]}
    ],
    "block without type": [{"text": _mrkdwn("no type")}],
}


@pytest.mark.parametrize("blocks", OVER_LIMIT.values(), ids=OVER_LIMIT.keys())
def test_blocks_over_a_limit_are_invalid_blocks(
    client: WebClient, standin: SlackStandIn, blocks: list[dict[str, Any]]
) -> None:
    """Blocks over a Block Kit limit are refused with invalid_blocks and a pointer; nothing is stored."""
    error = slack_error(lambda: client.chat_postMessage(channel=CHANNEL, text="fallback", blocks=blocks))
    assert error.response["error"] == "invalid_blocks"
    assert "json-pointer:/blocks" in error.response["response_metadata"]["messages"][0]
    assert standin.messages(CHANNEL) == []


def test_blocks_exactly_at_the_limits_are_accepted() -> None:
    """validate_blocks accepts every limit reached exactly, and 100 blocks when the limit is a view's."""
    at_limit = [
        {"type": "header", "text": _plain("h" * 150)},
        {"type": "section", "text": _mrkdwn("s" * 3000), "fields": [_mrkdwn("f" * 2000)] * 10},
        {"type": "context", "elements": [_mrkdwn("c" * 3000)] * 10},
        {
            "type": "actions",
            "elements": [_button(action_id=f"a{i}") for i in range(24)]
            + [
                _button(
                    text=_plain("b" * 75),
                    value="v" * 2000,
                    action_id="a" * 255,
                    url="https://x/" + "u" * 2990,
                    confirm={
                        **_confirm(title="t" * 100, text="t" * 300, confirm="c" * 30, deny="d" * 30),
                        "style": "danger",
                    },
                )
            ],
        },
    ]
    assert validate_blocks(at_limit) is None
    assert validate_blocks([{"type": "divider"}] * 100, limit=100) is None
    assert validate_blocks([{"type": "divider"}] * 100) is not None


# ----- faults -----


def test_ratelimited_answers_429_with_retry_after(client: WebClient, standin: SlackStandIn) -> None:
    """fail_next answers HTTP 429 ratelimited with Retry-After 1 and applies nothing."""
    standin.fail_next("chat.postMessage")
    error = slack_error(lambda: client.chat_postMessage(channel=CHANNEL, text="x"))
    assert (error.response.status_code, error.response["error"]) == (429, "ratelimited")
    assert error.response.headers["Retry-After"] == "1"
    assert standin.messages(CHANNEL) == []
    assert client.chat_postMessage(channel=CHANNEL, text="x")["ok"]


def test_rate_limit_retry_handler_recovers(standin: SlackStandIn) -> None:
    """slack_sdk's RateLimitErrorRetryHandler waits out Retry-After and the retried post succeeds once."""
    standin.fail_next("chat.postMessage", retry_after=0)
    retrying = WebClient(
        token=TOKEN,
        base_url=standin.api_url,
        timeout=5,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)],
    )
    assert retrying.chat_postMessage(channel=CHANNEL, text="x")["ok"]
    outcomes = [(c.ok, c.error) for c in standin.calls_to("chat.postMessage")]
    assert outcomes == [(False, "ratelimited"), (True, None)]
    assert len(standin.messages(CHANNEL)) == 1


def test_fail_next_other_errors_and_statuses(client: WebClient, standin: SlackStandIn) -> None:
    """Other injected errors answer HTTP 200 (or the given status) for the given number of calls."""
    standin.fail_next("conversations.history", "fatal_error", times=2)
    standin.fail_next("chat.update", "internal_error", status=500)
    for _ in range(2):
        error = slack_error(lambda: client.conversations_history(channel=CHANNEL))
        assert (error.response.status_code, error.response["error"]) == (200, "fatal_error")
    assert client.conversations_history(channel=CHANNEL)["ok"]
    ts = client.chat_postMessage(channel=CHANNEL, text="x")["ts"]
    error = slack_error(lambda: client.chat_update(channel=CHANNEL, ts=ts, text="y"))
    assert (error.response.status_code, error.response["error"]) == (500, "internal_error")
    assert standin.message(CHANNEL, ts).text == "x"  # type: ignore[union-attr]


def test_fail_next_for_one_channel_lets_the_others_through(client: WebClient, standin: SlackStandIn) -> None:
    """A fault for one channel waits for a call about that channel; calls about other channels succeed meanwhile."""
    standin.add_channel("C0OTHER", "other")
    standin.fail_next("chat.postMessage", "fatal_error", channel="C0OTHER")
    assert client.chat_postMessage(channel=CHANNEL, text="x")["ok"]
    error = slack_error(lambda: client.chat_postMessage(channel="C0OTHER", text="y"))
    assert error.response["error"] == "fatal_error"
    assert client.chat_postMessage(channel="C0OTHER", text="z")["ok"]
    assert [m.text for m in standin.messages("C0OTHER")] == ["z"]


def test_post_rate_allows_a_burst_then_one_per_second(
    client: WebClient, standin: SlackStandIn, fake_clock: FakeClock
) -> None:
    """With enforce_post_rate a channel takes a burst of 3 posts, then 1 per second; channels are apart."""
    standin.enforce_post_rate = True
    standin.add_channel("C0OTHER", "other")
    for i in range(3):
        client.chat_postMessage(channel=CHANNEL, text=f"burst {i}")
    error = slack_error(lambda: client.chat_postMessage(channel=CHANNEL, text="too fast"))
    assert (error.response.status_code, error.response.headers["Retry-After"]) == (429, "1")
    assert client.chat_postMessage(channel="C0OTHER", text="elsewhere")["ok"]
    fake_clock.advance(1.0)
    assert client.chat_postMessage(channel=CHANNEL, text="after a second")["ok"]
    assert len(standin.messages(CHANNEL)) == 4


def test_hold_next_stores_the_message_before_answering(client: WebClient, standin: SlackStandIn) -> None:
    """A held post is stored at once while its answer waits for the release event."""
    release = standin.hold_next("chat.postMessage")
    answers: list[Any] = []
    poster = threading.Thread(target=lambda: answers.append(client.chat_postMessage(channel=CHANNEL, text="held")))
    poster.start()
    try:
        held = standin.wait_held(timeout=5)
        assert held.method == "chat.postMessage" and held.ok
        stored = standin.messages(CHANNEL)
        assert [m.text for m in stored] == ["held"]
        assert poster.is_alive() and answers == []
    finally:
        release.set()
        poster.join(timeout=5)
    assert not poster.is_alive()
    assert answers[0]["ts"] == stored[0].ts


def test_stop_drops_a_held_answer(standin: SlackStandIn) -> None:
    """Stopping the server while an answer is held closes the connection without answering."""
    standin.hold_next("chat.postMessage")
    client = WebClient(token=TOKEN, base_url=standin.api_url, timeout=5)
    failures: list[BaseException] = []

    def post() -> None:
        """Post and keep whatever the client raised."""
        try:
            client.chat_postMessage(channel=CHANNEL, text="lost answer")
        except Exception as error:  # noqa: BLE001 - the test inspects whatever the client raised
            failures.append(error)

    poster = threading.Thread(target=post)
    poster.start()
    standin.wait_held(timeout=5)
    standin.stop()
    poster.join(timeout=10)
    assert not poster.is_alive()
    assert len(failures) == 1 and not isinstance(failures[0], SlackApiError)
    assert [m.text for m in standin.messages(CHANNEL)] == ["lost answer"]


def test_wait_for_gives_up_with_a_helpful_message(standin: SlackStandIn) -> None:
    """wait_for returns a truthy value, and otherwise raises AssertionError naming the last result in time."""
    assert standin.wait_for(lambda: "ready", timeout=0.1) == "ready"
    with pytest.raises(AssertionError, match=r"not true within 0.05 s .*IndexError"):
        standin.wait_for(lambda: standin.messages(CHANNEL)[0], timeout=0.05)
    with pytest.raises(AssertionError, match="no held call arrived"):
        standin.wait_held(timeout=0.05)


def test_malformed_requests_are_answered(standin: SlackStandIn, client: WebClient) -> None:
    """Malformed bodies and wrong argument types get invalid_arguments, and the server keeps serving."""
    url = standin.api_url + "chat.postMessage"
    bad = [
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"\xff\xfe", "application/x-www-form-urlencoded"),
        (b"no-equals-sign", "application/x-www-form-urlencoded"),
        (b"<xml/>", "application/xml"),
        (json.dumps({"token": TOKEN, "channel": ["C0LEXI"], "text": "x"}).encode(), "application/json"),
        (json.dumps({"token": TOKEN, "channel": CHANNEL, "limit": {}}).encode(), "application/json"),
    ]
    for body, content_type in bad[:-1]:
        status, answer = raw_post(url, body, content_type)
        assert (status, answer["ok"], answer["error"]) == (200, False, "invalid_arguments"), body
    history_url = standin.api_url + "conversations.history"
    assert raw_post(history_url, bad[-1][0], bad[-1][1])[1]["error"] == "invalid_arguments"
    assert raw_post(standin.url + "/nowhere", b"", None) == (404, {"ok": False, "error": "not_found"})
    assert client.auth_test()["ok"]


def test_get_with_query_string_and_token_param(standin: SlackStandIn) -> None:
    """A GET with the token and arguments in the query string is served like a POST."""
    url = f"{standin.api_url}users.info?token={TOKEN}&user=UBOB"
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - the stand-in's loopback URL
        answer = json.loads(response.read())
    assert answer["ok"] and answer["user"]["profile"]["display_name"] == "bob"
    assert "token" not in standin.calls_to("users.info")[0].args


# ----- views, response URLs, people -----


def test_trigger_id_is_single_use_and_expires(client: WebClient, standin: SlackStandIn, fake_clock: FakeClock) -> None:
    """views.open takes a fresh trigger once; reused or unknown is invalid, older than 3 s is expired."""
    trigger = standin.new_trigger_id("UBOB")
    opened = client.views_open(trigger_id=trigger, view=MODAL)["view"]
    assert opened["id"].startswith("V") and opened["hash"]
    assert [(v.kind, v.user, v.trigger_id) for v in standin.views] == [("open", "UBOB", trigger)]
    assert error_of(lambda: client.views_open(trigger_id=trigger, view=MODAL)) == "invalid_trigger_id"
    assert error_of(lambda: client.views_open(trigger_id="1.2.3", view=MODAL)) == "invalid_trigger_id"
    late = standin.new_trigger_id()
    fake_clock.advance(3.1)
    assert error_of(lambda: client.views_open(trigger_id=late, view=MODAL)) == "expired_trigger_id"
    assert len(standin.views) == 1


def test_views_update_push_and_stale_hash(client: WebClient, standin: SlackStandIn) -> None:
    """views.update finds a view by id or external_id and refuses a stale hash; views.push needs a trigger."""
    tracked = {**MODAL, "external_id": "task-7"}
    opened = client.views_open(trigger_id=standin.new_trigger_id(), view=tracked)["view"]
    updated = client.views_update(view_id=opened["id"], hash=opened["hash"], view=MODAL)["view"]
    assert updated["id"] == opened["id"]
    stale = slack_error(lambda: client.views_update(view_id=opened["id"], hash="0.stale", view=MODAL))
    assert stale.response["error"] == "hash_conflict"
    assert client.views_update(external_id="task-7", view=MODAL)["ok"]
    assert error_of(lambda: client.views_update(view_id="VNOPE", view=MODAL)) == "not_found"
    client.views_push(trigger_id=standin.new_trigger_id(), view=MODAL)
    assert [v.kind for v in standin.views] == ["open", "update", "update", "push"]
    too_many = {**MODAL, "blocks": [{"type": "divider"}] * 101}
    assert error_of(lambda: client.views_open(trigger_id=standin.new_trigger_id(), view=too_many)) == (
        "invalid_arguments"
    )


def test_views_publish_sets_the_home_tab(client: WebClient, standin: SlackStandIn) -> None:
    """views.publish stores each user's Home view under a stable id and refuses modals and unknown users."""
    first = client.views_publish(user_id="UALICE", view=HOME)["view"]
    second = client.views_publish(user_id="UALICE", view={**HOME, "blocks": post_block("two")})["view"]
    assert first["id"] == second["id"]
    assert standin.home_views["UALICE"]["blocks"] == post_block("two")
    assert error_of(lambda: client.views_publish(user_id="UALICE", view=MODAL)) == "invalid_arguments"
    assert error_of(lambda: client.views_publish(user_id="UNOBODY", view=HOME)) == "user_not_found"
    assert standin.views == []


def test_response_url_takes_five_posts(standin: SlackStandIn) -> None:
    """A response URL accepts five posts; the sixth is refused with 404 used_url."""
    webhook = WebhookClient(standin.new_response_url(), timeout=5)
    statuses = [webhook.send(text=f"reply {i}").status_code for i in range(6)]
    assert statuses == [200] * 5 + [404]
    assert json.loads(webhook.send(text="again").body)["error"] == "used_url"
    assert [r.body["text"] for r in standin.responses] == [f"reply {i}" for i in range(5)]


def test_bound_response_url_acts_on_its_message(
    client: WebClient, standin: SlackStandIn, fake_clock: FakeClock
) -> None:
    """A response URL bound to a message replaces it, answers its user privately, and expires in 30 min."""
    ts = client.chat_postMessage(channel=CHANNEL, text="pending", blocks=post_block())["ts"]
    url = standin.new_response_url(channel=CHANNEL, message_ts=ts, user="UBOB")
    webhook = WebhookClient(url, timeout=5)
    assert webhook.send(text="Only you can see this").status_code == 200
    assert [e.text for e in standin.ephemerals_for("UBOB")] == ["Only you can see this"]
    replaced = webhook.send(text="approved", blocks=post_block("Approved"), replace_original=True)
    assert replaced.status_code == 200
    message = standin.message(CHANNEL, ts)
    assert message is not None and (message.text, message.blocks, message.edits) == (
        "approved",
        post_block("Approved"),
        1,
    )
    fake_clock.advance(30 * 60 + 1)
    assert webhook.send(text="late").status_code == 404


def test_ephemeral_respects_explicit_members(client: WebClient, standin: SlackStandIn) -> None:
    """chat.postEphemeral reaches anyone by default, and only listed members once a member list is set."""
    client.chat_postEphemeral(channel=CHANNEL, user="UBOB", text="only bob")
    standin.set_members(CHANNEL, ["UALICE"])
    assert error_of(lambda: client.chat_postEphemeral(channel=CHANNEL, user="UBOB", text="x")) == (
        "user_not_in_channel"
    )
    assert [e.text for e in standin.ephemerals_for("UBOB")] == ["only bob"]
    assert client.conversations_members(channel=CHANNEL)["members"] == ["UBOT", "UALICE"]


def test_people_groups_and_channels(client: WebClient, standin: SlackStandIn) -> None:
    """users.info, usergroups.users.list and conversations.info/members/join answer from the directory."""
    assert client.users_info(user="UCAROL")["user"]["profile"]["display_name"] == "carol"
    assert error_of(lambda: client.users_info(user="UNOBODY")) == "user_not_found"
    standin.set_usergroup("S0APPROVERS", ["UALICE", "UBOB"])
    assert client.usergroups_users_list(usergroup="S0APPROVERS")["users"] == ["UALICE", "UBOB"]
    assert error_of(lambda: client.usergroups_users_list(usergroup="S0NONE")) == "no_such_subteam"
    members = client.conversations_members(channel=CHANNEL)["members"]
    assert members == ["UBOT", "UALICE", "UBOB", "UCAROL", "UDAVE"]
    standin.remove_bot_from(CHANNEL)
    assert client.conversations_info(channel=CHANNEL)["channel"]["is_member"] is False
    client.conversations_join(channel=CHANNEL)
    info = client.conversations_info(channel=CHANNEL)["channel"]
    assert (info["name"], info["is_member"]) == ("lexi-approvals", True)


def test_permalink_and_delete(client: WebClient, standin: SlackStandIn) -> None:
    """chat.getPermalink links to the message; chat.delete hides it from history but keeps a record."""
    ts = client.chat_postMessage(channel=CHANNEL, text="x")["ts"]
    link = client.chat_getPermalink(channel=CHANNEL, message_ts=ts)["permalink"]
    assert link == f"{standin.url}/archives/{CHANNEL}/p{ts.replace('.', '')}"
    client.chat_delete(channel=CHANNEL, ts=ts)
    assert client.conversations_history(channel=CHANNEL)["messages"] == []
    assert standin.message(CHANNEL, ts).deleted  # type: ignore[union-attr]
    assert error_of(lambda: client.chat_delete(channel=CHANNEL, ts=ts)) == "message_not_found"


# ----- requests into the app -----


def test_sign_matches_slack_sdk_verifier() -> None:
    """sign() makes headers slack_sdk's SignatureVerifier accepts, only for the right secret and body."""
    body, content_type = encode_interactive(build_block_action(action_id="approve", value="task-1"))
    headers = signed_request(SECRET, body, content_type)
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert SignatureVerifier(SECRET).is_valid_request(body, headers)
    assert not SignatureVerifier("another-secret").is_valid_request(body, headers)
    assert not SignatureVerifier(SECRET).is_valid_request(body + b"x", headers)
    fixed = sign(SECRET, b"hello", timestamp=1_531_420_618)
    expected = SignatureVerifier(SECRET).generate_signature(timestamp="1531420618", body=b"hello")
    assert fixed == {"X-Slack-Request-Timestamp": "1531420618", "X-Slack-Signature": expected}


def _bolt_app(standin: SlackStandIn) -> App:
    """A minimal real Bolt app that talks to the stand-in and checks signatures."""
    return App(
        signing_secret=SECRET,
        token_verification_enabled=False,
        client=WebClient(token=TOKEN, base_url=standin.api_url, timeout=5),
    )


def _dispatch(app: App, body: bytes, content_type: str) -> Any:
    """Send a body into the app signed as Slack signs it, and return Bolt's response."""
    headers = signed_request(SECRET, body, content_type)
    return app.dispatch(BoltRequest(body=body.decode("utf-8"), headers=headers))


def test_bolt_runs_the_action_listener_for_a_built_click(client: WebClient, standin: SlackStandIn) -> None:
    """A block action built and signed here is acknowledged by Bolt and reaches the action listener."""
    ts = client.chat_postMessage(channel=CHANNEL, text="pending", blocks=post_block())["ts"]
    app = _bolt_app(standin)
    clicked: list[dict[str, Any]] = []

    @app.action("approve")
    def handle_approve(ack: Any, body: dict[str, Any], respond: Any) -> None:
        """Acknowledge, then replace the card through the response URL."""
        ack()
        clicked.append(body)
        respond(text=f"Approved by <@{body['user']['id']}>", replace_original=True)

    payload = build_block_action(
        action_id="approve",
        value="task-1",
        user="UBOB",
        message_ts=ts,
        response_url=standin.new_response_url(channel=CHANNEL, message_ts=ts),
    )
    response = _dispatch(app, *encode_interactive(payload))
    assert response.status == 200
    standin.wait_for(lambda: standin.responses)
    assert clicked[0]["actions"][0]["value"] == "task-1" and clicked[0]["container"]["message_ts"] == ts
    assert standin.message(CHANNEL, ts).text == "Approved by <@UBOB>"  # type: ignore[union-attr]
    body, content_type = encode_interactive(payload)
    forged_headers = signed_request("wrong-secret", body, content_type)
    forged = app.dispatch(BoltRequest(body=body.decode(), headers=forged_headers))
    assert forged.status == 401 and len(clicked) == 1


def test_bolt_accepts_built_command_submission_and_event(standin: SlackStandIn) -> None:
    """Slash command, view submission and app_home_opened built here are accepted and routed by Bolt."""
    app = _bolt_app(standin)
    submitted: list[str] = []

    @app.command("/lexi")
    def handle_lexi(ack: Any, command: dict[str, Any], client: WebClient) -> None:
        """Acknowledge and open a modal with the command's trigger."""
        ack()
        client.views_open(trigger_id=command["trigger_id"], view={**MODAL, "callback_id": "dismiss"})

    @app.view("dismiss")
    def handle_dismiss(ack: Any, view: dict[str, Any]) -> None:
        """Read the reason and acknowledge."""
        submitted.append(view["state"]["values"]["reason"]["reason_input"]["value"])
        ack()

    @app.event("app_home_opened")
    def handle_home(event: dict[str, Any], client: WebClient) -> None:
        """Publish the Home tab for whoever opened it."""
        client.views_publish(user_id=event["user"], view=HOME)

    command = build_slash_command(text="status", trigger_id=standin.new_trigger_id("UALICE"))
    assert _dispatch(app, *encode_command(command)).status == 200
    standin.wait_for(lambda: standin.views)
    submission = build_view_submission(
        callback_id="dismiss", values={"reason": {"reason_input": "duplicate"}}, private_metadata="task-1"
    )
    assert _dispatch(app, *encode_interactive(submission)).status == 200
    assert submitted == ["duplicate"]
    assert _dispatch(app, *encode_event(build_app_home_opened(user="UCAROL"))).status == 200
    standin.wait_for(lambda: standin.home_views.get("UCAROL"))
    assert standin.views[0].user == "UALICE"
