"""`lexi-bot demo` without a browser: its API acts as Slack would, and the command runs and stops cleanly."""

from __future__ import annotations

import json
import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from slack_sdk import WebClient

from bot.dev.demo import Demo
from bot.dev.standin import payloads
from bot.dev.standin.slack import SlackStandIn
from bot.slack import assistant, blocks
from tests.support.harness import SECRETS_GIVEN
from tests.support.process import BotProcess, clean_env


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    """A demo with the sample tasks, fast polling and no generated tasks."""
    with Demo(generate_every=None, complete_after=None, poll_interval=0.3, post_interval=0.0) as running:
        SECRETS_GIVEN.update(running.secrets())
        yield running


@pytest.fixture(scope="module")
def api(demo: Demo) -> Iterator[httpx.Client]:
    """An HTTP client for the demo page's API, sending the page's own Origin as a browser on the page does."""
    with httpx.Client(base_url=demo.url, timeout=10, headers={"Origin": demo.url.rstrip("/")}) as client:
        yield client


def state(api: httpx.Client, user: str) -> dict[str, Any]:
    """What `user` sees now."""
    response = api.get("/api/state", params={"user": user})
    assert response.status_code == 200
    return dict(response.json())


def wait_for(check: Any, timeout: float = 10.0) -> Any:
    """Poll `check` until truthy (bounded) and return its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{getattr(check, '__name__', check)} not true within {timeout}s")


def card(api: httpx.Client, user: str, words: str) -> dict[str, Any]:
    """The channel message whose text contains `words` (waiting for it to be announced)."""

    def find() -> dict[str, Any] | None:
        items = state(api, user)["timeline"]
        return next((i for i in items if i["kind"] == "message" and words in i["text"]), None)

    return dict(wait_for(find))


def click(api: httpx.Client, user: str, message: dict[str, Any], action_id: str) -> httpx.Response:
    """Click the card button with `action_id` as `user`."""
    block = next(i for i, b in enumerate(message["blocks"]) if b["type"] == "actions")
    element = [e["action_id"] for e in message["blocks"][block]["elements"]].index(action_id)
    return api.post(
        "/api/click",
        json={"user": user, "where": {"surface": "message", "ts": message["ts"]}, "block": block, "element": element},
    )


def test_people_see_only_their_own_ephemerals(api: httpx.Client) -> None:
    """Carol's refusal reaches Carol alone, names who may decide, and leaves the card pending."""
    message = card(api, "UCAROL", "Q1 Outbound")
    assert click(api, "UCAROL", message, blocks.APPROVE_ACTION).json() == {"ok": True, "status": 200, "error": None}

    def refusal() -> list[dict[str, Any]]:
        return [i for i in state(api, "UCAROL")["timeline"] if i["kind"] == "ephemeral" and "Only" in i["text"]]

    assert "<@UALICE>, <@UBOB>" in wait_for(refusal)[0]["text"]
    assert not [i for i in state(api, "UALICE")["timeline"] if i["kind"] == "ephemeral"]
    assert card(api, "UALICE", "Q1 Outbound")["text"].startswith("Lexi needs approval")


def test_modal_submission_goes_through_the_bot(demo: Demo, api: httpx.Client) -> None:
    """Dismiss opens the bot's modal; an empty submission gets the bot's error under the field; a reason dismisses."""
    message = card(api, "UBOB", "Merge 'Webinar attendees")
    click(api, "UBOB", message, blocks.DISMISS_ACTION)
    modal = wait_for(lambda: state(api, "UBOB")["modal"])
    assert modal["view"]["title"]["text"] == "Dismiss task" and state(api, "UALICE")["modal"] is None
    api.post("/api/submit", json={"user": "UBOB", "values": {}})
    assert state(api, "UBOB")["modal"]["errors"] == {"reason": "Choose a reason."}
    answer = api.post(
        "/api/submit",
        json={
            "user": "UBOB",
            "values": {"reason": {"reason_choice": "incorrect_params"}, "note": {"note_text": "wrong list"}},
        },
    )
    assert answer.json()["ok"] and state(api, "UBOB")["modal"] is None
    assert wait_for(lambda: "Dismissed by <@UBOB>" in card(api, "UBOB", "Merge 'Webinar")["text"])
    assert demo.sandbox is not None
    task = next(t for t in demo.sandbox.tasks() if t["description"].startswith("Merge"))
    assert task["status"] == "dismissed" and task["dismiss_reason"] == "incorrect_params: wrong list"


def test_slash_command_answer_is_shown_to_its_author(api: httpx.Client) -> None:
    """`/lexi help` is posted as a signed slash command; the bot's immediate answer shows as an ephemeral."""
    before = len(state(api, "UBOB")["timeline"])
    assert api.post("/api/type", json={"user": "UBOB", "text": "/lexi help"}).json()["ok"]
    # Cards the poller announces meanwhile may come first: wait for the answer itself.
    items = wait_for(lambda: [i for i in state(api, "UBOB")["timeline"][before:] if i["kind"] == "ephemeral"])
    assert len(items) == 1 and "/lexi" in items[0]["text"]
    answer = api.post("/api/type", json={"user": "UBOB", "text": "/nope"}).json()
    assert not answer["ok"] and "not a valid command" in answer["error"]


def pane(api: httpx.Client, user: str) -> dict[str, Any]:
    """The person's assistant pane now (it must be open)."""
    shown = state(api, user)["pane"]
    assert shown is not None
    return dict(shown)


def lexi_said(api: httpx.Client, user: str, words: str) -> list[dict[str, Any]]:
    """The bot's messages in the person's pane containing `words`."""
    return [m for m in pane(api, user)["messages"] if m["user"] == "UBOT" and words in m["text"]]


def test_opening_the_pane_shows_the_greeting_and_the_suggested_prompts(api: httpx.Client) -> None:
    """Opening the pane sends assistant_thread_started; the bot's greeting and its three prompts are in the pane."""
    assert state(api, "UBOB")["pane"] is None
    assert api.post("/api/pane", json={"user": "UBOB"}).json() == {"ok": True, "status": 200, "error": None}
    wait_for(lambda: pane(api, "UBOB")["prompts"])  # set right after the greeting is posted
    greeting = lexi_said(api, "UBOB", "Hi, I'm Lexi")
    shown = pane(api, "UBOB")
    assert [m["ts"] for m in shown["messages"]] == [greeting[0]["ts"]] and shown["channel"] == "DBOB"
    assert [p["message"] for p in shown["prompts"]] == list(assistant.SUGGESTED_PROMPTS)
    assert shown["status"] == "" and shown["title"] == ""
    assert state(api, "UALICE")["pane"] is None or state(api, "UALICE")["pane"]["channel"] == "DALICE"
    requests = api.get("/api/panel").json()["slack"]["requests"]
    assert {"kind": "assistant_thread_started", "status": 200} in [
        {k: r[k] for k in ("kind", "status")} for r in requests
    ]
    # Open again: the same thread; "New chat": another one, greeted too.
    api.post("/api/pane", json={"user": "UBOB"})
    assert pane(api, "UBOB")["thread_ts"] == shown["thread_ts"]
    api.post("/api/pane", json={"user": "UBOB", "new": True})
    assert pane(api, "UBOB")["thread_ts"] != shown["thread_ts"]
    assert wait_for(lambda: lexi_said(api, "UBOB", "Hi, I'm Lexi"))


def test_a_prompt_gets_lexis_answer_in_the_pane_and_its_task_a_card(demo: Demo, api: httpx.Client) -> None:
    """A suggested prompt is sent as message.im in the pane's thread; Lexi's answer, a title and a card follow."""
    assert demo.sandbox is not None
    refused = api.post("/api/ask", json={"user": "UCAROL", "text": "hello"})
    assert refused.status_code == 400 and refused.json()["error"] == "the Lexi pane is not open"
    api.post("/api/pane", json={"user": "UALICE"})
    wait_for(lambda: lexi_said(api, "UALICE", "Hi, I'm Lexi"))
    prompt = assistant.SUGGESTED_PROMPTS[1]
    assert prompt.startswith("Find 20 VPs of Sales")
    assert api.post("/api/ask", json={"user": "UALICE", "text": prompt}).json()["ok"]
    (answer,) = wait_for(lambda: lexi_said(api, "UALICE", "I prepared a prospect search"))
    shown = pane(api, "UALICE")
    assert [m["user"] for m in shown["messages"]][:3] == ["UBOT", "UALICE", "UBOT"]
    assert shown["messages"][1]["text"] == prompt and shown["title"] == prompt
    assert demo.standin is not None
    statuses = [u.value for u in demo.standin.thread_updates(shown["channel"], shown["thread_ts"], "status")]
    assert statuses[0] == assistant.THINKING  # shown while Lexi answers, then cleared once the answer is posted
    assert wait_for(lambda: pane(api, "UALICE")["status"] == "")
    task = next(
        t for t in demo.sandbox.tasks() if t["description"] == "Find VPs of Sales at fintech companies in New York"
    )
    assert task["status"] == "pending" and task["metadata"]["per_page"] == 20
    posted = wait_for(
        lambda: next((i for i in state(api, "UALICE")["timeline"] if task["id"] in json.dumps(i["blocks"])), None)
    )
    # A link to the card when it was recorded before Lexi answered; else she says it is on its way (a busy channel).
    assert (
        "see its card" in answer["text"] and posted["ts"].replace(".", "") in answer["text"]
    ) or "its card will appear in <#C0LEXI> shortly" in answer["text"]
    # The card itself follows in the pane's thread, with its buttons, the same card as the channel's.
    (in_pane,) = wait_for(lambda: [m for m in pane(api, "UALICE")["messages"] if task["id"] in json.dumps(m["blocks"])])
    assert in_pane["user"] == "UBOT" and any(b["type"] == "actions" for b in in_pane["blocks"])
    # Alice approves it right there in the pane: the task is approved once, and the channel's card follows.
    block = next(i for i, b in enumerate(in_pane["blocks"]) if b["type"] == "actions")
    element = [e["action_id"] for e in in_pane["blocks"][block]["elements"]].index(blocks.APPROVE_ACTION)
    where = {"surface": "dm", "ts": in_pane["ts"]}
    clicked = api.post("/api/click", json={"user": "UALICE", "where": where, "block": block, "element": element})
    assert clicked.json()["ok"]
    assert wait_for(lambda: "Approved by <@UALICE>" in card(api, "UALICE", "VPs of Sales at fintech")["text"])
    assert wait_for(
        lambda: [m for m in pane(api, "UALICE")["messages"] if m["ts"] == in_pane["ts"] and "Approved by" in m["text"]]
    )
    assert len(demo.sandbox.calls_to("POST", f"/v1/lexi/tasks/{task['id']}/approve")) == 1


def _post_card_in_dm(demo: Demo, api: httpx.Client, user: str, words: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The bot posts the channel card containing `words` in `user`'s DM; return the card and the DM's copy."""
    assert demo.standin is not None
    shown = card(api, user, words)
    client = WebClient(token=demo.bot_token, base_url=demo.standin.api_url)
    dm = client.conversations_open(users=user)["channel"]["id"]
    client.chat_postMessage(channel=dm, text=shown["text"], blocks=shown["blocks"])
    copy = wait_for(lambda: [i for i in state(api, user)["dm"]["timeline"] if words in i["text"]])
    return shown, copy[0]


def test_a_card_in_a_dm_is_shown_and_a_click_there_reaches_the_bot_from_the_dm(demo: Demo, api: httpx.Client) -> None:
    """A card the bot posts in Carol's DM is in her DM view; her click is sent with the DM as its channel."""
    assert demo.standin is not None
    _channel_card, in_dm = _post_card_in_dm(demo, api, "UCAROL", "Mark 42 contacts")
    assert state(api, "UCAROL")["dm"]["channel"] == "DCAROL" and in_dm["user"] == "UBOT"
    assert not [i for i in state(api, "UBOB")["dm"]["timeline"] if "Mark 42 contacts" in i["text"]]  # his own
    # Bob cannot click in Carol's DM: a person's clicks land in their own DM only.
    block = next(i for i, b in enumerate(in_dm["blocks"]) if b["type"] == "actions")
    where = {"surface": "dm", "ts": in_dm["ts"]}
    bobs = api.post("/api/click", json={"user": "UBOB", "where": where, "block": block, "element": 0})
    assert bobs.status_code == 400 and bobs.json()["error"] == "the message is gone"
    before = len(demo.standin.ephemerals)
    clicked = api.post("/api/click", json={"user": "UCAROL", "where": where, "block": block, "element": 0})
    assert clicked.json() == {"ok": True, "status": 200, "error": None}
    # Carol may not decide: the bot tells her so privately where she clicked, in her DM.
    told = wait_for(lambda: demo.standin.ephemerals[before:] if demo.standin else None)
    assert [(e.channel, e.user) for e in told] == [("DCAROL", "UCAROL")]
    refusal = wait_for(lambda: [i for i in state(api, "UCAROL")["dm"]["timeline"] if i["kind"] == "ephemeral"])
    assert "<@UALICE>, <@UBOB>" in refusal[0]["text"]
    assert card(api, "UCAROL", "Mark 42 contacts")["text"].startswith("Lexi needs approval")


def test_an_approval_in_a_dm_decides_the_task_and_updates_the_channel_card(demo: Demo, api: httpx.Client) -> None:
    """The demo sends campaign launches to the approvers' DMs too (`notify: both`): Alice approves hers there.

    The task is approved once in LeadLex, and the channel's card and Bob's copy say so as her own copy does.
    """
    assert demo.sandbox is not None
    channel_card = card(api, "UALICE", "Q1 Outbound")
    (in_dm,) = wait_for(lambda: [i for i in state(api, "UALICE")["dm"]["timeline"] if "Q1 Outbound" in i["text"]])
    wait_for(lambda: [i for i in state(api, "UBOB")["dm"]["timeline"] if "Q1 Outbound" in i["text"]])
    assert not [i for i in state(api, "UCAROL")["dm"]["timeline"] if "Q1 Outbound" in i["text"]]  # not an approver
    block = next(i for i, b in enumerate(in_dm["blocks"]) if b["type"] == "actions")
    element = [e["action_id"] for e in in_dm["blocks"][block]["elements"]].index(blocks.APPROVE_ACTION)
    where = {"surface": "dm", "ts": in_dm["ts"]}
    clicked = api.post("/api/click", json={"user": "UALICE", "where": where, "block": block, "element": element})
    assert clicked.json()["ok"]
    assert wait_for(lambda: "Approved by <@UALICE>" in card(api, "UALICE", "Q1 Outbound")["text"])
    assert card(api, "UALICE", "Q1 Outbound")["ts"] == channel_card["ts"]
    for user in ("UALICE", "UBOB"):
        assert wait_for(lambda user=user: _approved_copy(api, user))
    task = next(t for t in demo.sandbox.tasks() if "Q1 Outbound" in t["description"])
    assert task["status"] != "pending"


def _approved_copy(api: httpx.Client, user: str) -> list[dict[str, Any]]:
    """The person's DM copy of the Q1 Outbound card once it says it was approved."""
    return [i for i in state(api, user)["dm"]["timeline"] if "Q1 Outbound" in i["text"] and "Approved by" in i["text"]]


def test_a_card_in_the_pane_thread_is_shown_there_and_clickable(demo: Demo, api: httpx.Client) -> None:
    """A card the bot posts in Bob's pane thread is in his pane, not his DM's list; its Dismiss opens the modal."""
    assert demo.standin is not None
    api.post("/api/pane", json={"user": "UBOB"})
    thread_ts = pane(api, "UBOB")["thread_ts"]
    shown = card(api, "UBOB", "Mark 42 contacts")
    client = WebClient(token=demo.bot_token, base_url=demo.standin.api_url)
    client.chat_postMessage(channel="DBOB", thread_ts=thread_ts, text=shown["text"], blocks=shown["blocks"])
    (in_pane,) = wait_for(lambda: [m for m in pane(api, "UBOB")["messages"] if m["blocks"]])
    assert not [i for i in state(api, "UBOB")["dm"]["timeline"] if "Mark 42 contacts" in i["text"]]
    block = next(i for i, b in enumerate(in_pane["blocks"]) if b["type"] == "actions")
    element = [e["action_id"] for e in in_pane["blocks"][block]["elements"]].index(blocks.DISMISS_ACTION)
    where = {"surface": "dm", "ts": in_pane["ts"]}
    clicked = api.post("/api/click", json={"user": "UBOB", "where": where, "block": block, "element": element})
    assert clicked.json()["ok"]
    modal = wait_for(lambda: state(api, "UBOB")["modal"])
    assert modal["view"]["title"]["text"] == "Dismiss task"
    assert api.post("/api/close", json={"user": "UBOB"}).json()["ok"] and state(api, "UBOB")["modal"] is None
    assert card(api, "UBOB", "Mark 42 contacts")["text"].startswith("Lexi needs approval")


def test_a_dm_to_the_bot_is_answered_in_a_thread_under_it(api: httpx.Client) -> None:
    """A message written in the DM view is sent as message.im; the bot's answer is a reply under it."""
    assert api.post("/api/dm", json={"user": "UBOB", "text": "What is waiting for my approval?"}).json()["ok"]

    def answered() -> list[dict[str, Any]]:
        mine = [i for i in state(api, "UBOB")["dm"]["timeline"] if i.get("user") == "UBOB"]
        return mine[-1]["replies"] if mine else []

    (reply,) = wait_for(answered)
    assert reply["user"] == "UBOT" and "for your approval" in reply["text"]
    assert state(api, "UBOB")["pane"] is None or all(
        "waiting for my approval" not in m["text"] for m in state(api, "UBOB")["pane"]["messages"]
    )


def test_messages_typed_are_escaped_as_slack_does(api: httpx.Client) -> None:
    """A plain message is posted to the channel as the person, with & < > escaped like Slack's client does."""
    api.post("/api/type", json={"user": "UALICE", "text": "hi <!channel> & all"})
    mine = wait_for(lambda: [i for i in state(api, "UALICE")["timeline"] if i.get("user") == "UALICE"])
    assert mine[-1]["text"] == "hi &lt;!channel&gt; &amp; all"


def test_requests_are_refused_unless_they_make_sense(demo: Demo, api: httpx.Client) -> None:
    """Unknown people, elements and foreign Host headers are refused; the bot itself checks Slack signatures."""
    assert api.get("/api/state", params={"user": "UEVE"}).status_code == 400
    message = card(api, "UALICE", "Find VPs")
    bad = api.post(
        "/api/click",
        json={"user": "UALICE", "where": {"surface": "message", "ts": message["ts"]}, "block": 99, "element": 0},
    )
    assert bad.status_code == 400 and bad.json()["error"] == "no such element"
    assert api.get("/", headers={"Host": "evil.example"}).status_code == 403
    body, content_type = payloads.encode_command(payloads.build_slash_command(text="help"))
    unsigned = httpx.post(f"{demo.bot_url}/slack/events", content=body, headers={"Content-Type": content_type})
    assert unsigned.status_code == 401


def _slack_requests(api: httpx.Client) -> int:
    """How many requests the demo has sent to the bot as Slack so far (from the panel)."""
    return len(api.get("/api/panel").json()["slack"]["requests"])


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": ""},
        {"Origin": "http://127.0.0.1:1"},
        {"Origin": "https://127.0.0.1"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
    ids=["other-site", "null", "missing", "other-port", "other-scheme", "fetch-cross-site", "fetch-same-site"],
)
def test_actions_from_another_origin_are_refused(api: httpx.Client, headers: dict[str, str]) -> None:
    """A page elsewhere (or a request without the page's own Origin) cannot make anyone act in the demo."""
    before = _slack_requests(api)
    request = api.build_request("POST", "/api/type", json={"user": "UALICE", "text": "/lexi help"})
    for name, value in headers.items():
        if value:
            request.headers[name] = value
        else:
            del request.headers[name]
    answer = api.send(request)
    assert answer.status_code == 403 and not answer.json()["ok"]
    assert _slack_requests(api) == before  # nothing reached the bot


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data; boundary=x",
        None,
    ],
)
def test_actions_accept_only_json(api: httpx.Client, content_type: str | None) -> None:
    """Bodies a cross-site form could send without a preflight are refused with 415, before anything happens."""
    before = _slack_requests(api)
    request = api.build_request("POST", "/api/type", content=b'{"user": "UALICE", "text": "/lexi help"}')
    if content_type is None:
        request.headers.pop("Content-Type", None)
    else:
        request.headers["Content-Type"] = content_type
    assert api.send(request).status_code == 415
    assert (
        api.post(
            "/api/type",
            content=b'{"user": "UALICE", "text": "/lexi help"}',
            headers={"Content-Type": "application/json; charset=utf-8"},
        ).status_code
        == 200
    )
    assert _slack_requests(api) == before + 1


def test_request_bodies_are_bounded(api: httpx.Client) -> None:
    """A body over 64 kB is refused with 413 without being parsed; one of unknown length with 411."""
    big = json.dumps({"user": "UALICE", "text": "x" * 70_000}).encode()
    assert api.post("/api/type", content=big, headers={"Content-Type": "application/json"}).status_code == 413

    def chunks() -> Iterator[bytes]:
        yield b'{"user": "UALICE", '
        yield b'"text": "/lexi help"}'

    streamed = api.post("/api/type", content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 411


@pytest.mark.parametrize("method", ["HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_refused_cleanly(api: httpx.Client, method: str) -> None:
    """Methods the demo does not serve get 405 naming the ones it does, not a 5xx."""
    answer = api.request(method, "/api/click")
    assert answer.status_code == 405 and answer.headers["Allow"] == "GET, POST"


def test_panel_shows_calls_budget_and_log(api: httpx.Client) -> None:
    """The panel lists LeadLex calls with status codes, the budget left, Slack traffic both ways and log lines."""
    api.post("/api/type", json={"user": "UALICE", "text": "/lexi help"})
    panel = api.get("/api/panel").json()
    assert any(c["path"].startswith("/v1/lexi/tasks") and c["status"] == 200 for c in panel["leadlex"]["calls"])
    assert panel["leadlex"]["budget"]["remaining"] < panel["leadlex"]["budget"]["limit"]
    assert {"kind": "slash_command", "summary": "/lexi help", "status": 200} in [
        {k: r[k] for k in ("kind", "summary", "status")} for r in panel["slack"]["requests"]
    ]
    assert any(c["method"] == "chat.postMessage" and c["ok"] for c in panel["slack"]["api"])
    assert any("demo ready" in line for line in panel["log"])


def test_versions_answer_at_once(api: httpx.Client) -> None:
    """/api/versions answers the version counters the page follows, at once (nothing is held open)."""
    response = api.get("/api/versions")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    assert set(response.json()) == {"slack", "panel"} and all(isinstance(v, int) for v in response.json().values())


def test_standin_version_grows_with_every_change(slack: SlackStandIn) -> None:
    """The stand-in's version moves with each Web API call and each response-URL post (the page's change feed)."""
    start = slack.version
    WebClient(token="xoxb-test-token", base_url=slack.api_url).chat_postMessage(channel="C0LEXI", text="hi")
    assert slack.version == start + 1
    httpx.post(slack.new_response_url(channel="C0LEXI", user="UALICE"), json={"text": "only you"}, timeout=5)
    assert slack.version == start + 2


# --- the command itself ---------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_demo_command_prints_one_url_and_stops_cleanly(tmp_path: Path, signum: int) -> None:
    """`lexi-bot demo` prints one loopback URL, serves the page and the cards, and exits 0 on a signal."""
    proc = BotProcess(["demo", "--port", "0"], clean_env(), tmp_path)
    try:
        found = wait_for(lambda: re.findall(r"https?://[^\s]+", proc.output) or proc.proc.poll() is not None, 20)
        assert isinstance(found, list), proc.output
        assert len(found) == 1 and re.fullmatch(r"http://127\.0\.0\.1:\d+/", found[0])
        url = found[0]
        page = httpx.get(url, timeout=5)
        assert page.status_code == 200 and "lexi-approvals" in page.text
        assert httpx.get(f"{url}static/blockkit.js", timeout=5).status_code == 200
        assert wait_for(lambda: httpx.get(f"{url}api/state", params={"user": "UALICE"}).json()["timeline"], 20)
        proc.proc.send_signal(signum)
        assert proc.wait(timeout=20) == 0
        assert "Traceback" not in proc.output and "stopping" in proc.output
    finally:
        proc.stop()


def test_demo_port_in_use_is_explained(tmp_path: Path) -> None:
    """A busy port stops the demo with one line saying so, not a traceback."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = BotProcess(["demo", "--port", str(port)], clean_env(), tmp_path)
        try:
            assert proc.wait(timeout=20) == 2
            assert f"cannot listen on 127.0.0.1:{port}" in proc.output and "Traceback" not in proc.output
        finally:
            proc.stop()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "demo.example"])  # noqa: S104 - addresses to refuse
def test_demo_refuses_a_non_loopback_address_without_the_flag(tmp_path: Path, host: str) -> None:
    """Listening beyond loopback lets others drive the demo: without --allow-remote it stops with one line."""
    proc = BotProcess(["demo", "--host", host, "--port", "0"], clean_env(), tmp_path)
    try:
        assert proc.wait(timeout=20) == 2
        lines = proc.output.strip().splitlines()
        assert len(lines) == 1 and "--allow-remote" in lines[0] and host in lines[0], proc.output
    finally:
        proc.stop()


def test_allow_remote_warns_who_can_drive_the_demo(tmp_path: Path) -> None:
    """With --allow-remote the demo warns that anyone who can reach the port can drive it (here the bind fails)."""
    proc = BotProcess(["demo", "--allow-remote", "--host", "192.0.2.1", "--port", "0"], clean_env(), tmp_path)
    try:
        assert proc.wait(timeout=20) == 2  # 192.0.2.1 (TEST-NET-1) is not ours: nothing listens beyond loopback
        assert "anyone who can reach" in proc.output and "cannot listen on 192.0.2.1" in proc.output
        assert "Traceback" not in proc.output
    finally:
        proc.stop()
