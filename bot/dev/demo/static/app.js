/* The demo page: a Slack-like channel, the DM with the app and Lexi's assistant pane over /api/state, followed
   through /api/versions, acting through /api/*. */
(function () {
  "use strict";

  const BK = window.BlockKit;
  const $ = (selector) => document.querySelector(selector);
  const COLORS = { UALICE: "#e8912d", UBOB: "#2bac76", UCAROL: "#1264a3" };
  const page = {
    me: localStorage.getItem("lexi-demo-person"),
    data: null,
    view: "channel",
    thread: null,
    homeNote: "",
    panelOpen: true,
    paneOpen: false,
    paneNote: "",
    dmSeen: 0,
    dismissed: new Set(),
    nodes: new Map(),
    versions: { slack: null, panel: null },
  };

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function clock(seconds, withSeconds) {
    const date = new Date(seconds * 1000);
    const h = date.getHours() % 12 || 12;
    const pad = (n) => String(n).padStart(2, "0");
    return `${h}:${pad(date.getMinutes())}${withSeconds ? ":" + pad(date.getSeconds()) : ""} ${date.getHours() < 12 ? "AM" : "PM"}`;
  }

  function toast(message) {
    const node = el("div", "toast", message);
    $("#toasts").appendChild(node);
    setTimeout(() => node.remove(), 6000);
  }

  async function post(path, body) {
    try {
      const response = await fetch(path, {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify(Object.assign({ user: page.me }, body)),
      });
      return await response.json();
    } catch (error) {
      return { ok: false, status: 0, error: "the demo server is not answering" };
    }
  }

  /** Run `fn` once at a time; a call made meanwhile runs once more afterwards. */
  function coalesced(fn) {
    let running = false;
    let again = false;
    return async function run() {
      if (running) { again = true; return; }
      running = true;
      try { await fn(); } catch (error) { console.warn(error); }
      running = false;
      if (again) { again = false; run(); }
    };
  }

  const refreshState = coalesced(async () => {
    const response = await fetch(`/api/state?user=${encodeURIComponent(page.me)}`);
    if (!response.ok) return;
    page.data = await response.json();
    render();
  });

  const refreshPanel = coalesced(async () => {
    const response = await fetch("/api/panel");
    if (response.ok) renderPanel(await response.json());
  });

  function context(extra) {
    const data = page.data || {};
    const people = {};
    (data.people || []).forEach((person) => { people[person.id] = person.name; });
    if (data.bot) people[data.bot.id] = data.bot.name;
    const channels = data.channel ? { [data.channel.id]: data.channel.name } : {};
    return Object.assign({ people, channels, me: page.me, now: new Date() }, extra);
  }

  function person(id) {
    const data = page.data || {};
    if (data.bot && id === data.bot.id) return { id, name: data.bot.name, bot: true };
    return (data.people || []).find((p) => p.id === id) || { id, name: id };
  }

  function avatar(id, small) {
    const who = person(id);
    const node = el("div", "avatar" + (who.bot ? " bot" : "") + (small ? " small" : ""), who.bot ? "L" : who.name[0]);
    if (!who.bot) node.style.background = COLORS[id] || "#616061";
    node.setAttribute("aria-hidden", "true");
    return node;
  }

  async function click(where, detail) {
    const answer = await post("/api/click", { where, block: detail.block, element: detail.element, selected: detail.selected });
    if (!answer.ok) toast(`⚠️ lexi-bot did not handle that: ${answer.error}`);
    refreshState();
  }

  // --- messages ---

  /** A message (or ephemeral) as Slack shows it; in the DM (`surface` "dm") its replies show under it. */
  function messageNode(item, key, surface) {
    const ephemeral = item.kind === "ephemeral";
    const node = el("div", "msg" + (ephemeral ? " ephemeral" : ""));
    node.dataset.key = key;
    node.dataset.ts = item.ts;
    node.dataset.kind = item.kind;
    if (ephemeral) {
      const tag = el("div", "ephemeral-tag");
      tag.append(el("span", "eye", "👁"), el("span", null, "Only visible to you"));
      node.appendChild(tag);
    }
    const row = el("div", "msg-row");
    row.appendChild(avatar(item.user));
    const body = el("div", "msg-body");
    const head = el("div", "msg-head");
    const who = person(item.user);
    head.appendChild(el("span", "msg-author", who.name));
    if (who.bot) head.appendChild(el("span", "app-badge", "APP"));
    head.appendChild(el("span", "msg-time", clock(Number(item.ts))));
    body.appendChild(head);
    const where = ephemeral ? { surface: "ephemeral", id: item.id } : { surface: surface || "message", ts: item.ts };
    const ctx = context({ onAction: (detail) => click(where, detail) });
    const content = item.blocks && item.blocks.length ? BK.blocks(item.blocks, ctx) : BK.mrkdwn(item.text, ctx);
    content.classList.add("msg-content");
    body.appendChild(content);
    if (item.edited) body.appendChild(el("span", "edited", "(edited)"));
    if (item.replies && item.replies.length && surface === "dm") body.appendChild(inlineReplies(item, key));
    else if (item.replies && item.replies.length) body.appendChild(threadSummary(item));
    if (ephemeral) {
      const dismiss = el("button", "linkish", "Dismiss message");
      dismiss.type = "button";
      dismiss.addEventListener("click", () => { page.dismissed.add(key); render(); });
      body.appendChild(dismiss);
    }
    row.appendChild(body);
    node.appendChild(row);
    return node;
  }

  function inlineReplies(item, key) {
    const thread = el("div", "inline-replies");
    item.replies.forEach((reply) => thread.appendChild(messageNode(Object.assign({ kind: "message" }, reply), `${key}r${reply.ts}`, "dm")));
    return thread;
  }

  function threadSummary(item) {
    const summary = el("button", "thread-summary");
    summary.type = "button";
    const people = Array.from(new Set(item.replies.map((reply) => reply.user)));
    people.slice(0, 3).forEach((id) => summary.appendChild(avatar(id, true)));
    const count = item.replies.length;
    summary.appendChild(el("span", "reply-count", `${count} ${count === 1 ? "reply" : "replies"}`));
    summary.appendChild(el("span", "muted", `Last reply at ${clock(Number(item.replies[count - 1].ts))}`));
    summary.addEventListener("click", () => { page.thread = item.ts; setPaneOpen(false); renderThread(); });
    return summary;
  }

  function renderMessages() {
    const list = $("#messages");
    const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 120;
    const seen = new Map();
    const nodes = [];
    (page.data.timeline || []).forEach((item) => {
      const key = item.kind === "ephemeral" ? item.id : `m${item.ts}`;
      if (page.dismissed.has(key)) return;
      const signature = JSON.stringify(item);
      const cached = page.nodes.get(key);
      const node = cached && cached.signature === signature ? cached.node : messageNode(item, key);
      seen.set(key, { signature, node });
      nodes.push(node);
    });
    const fresh = nodes.some((node) => node.dataset.kind === "ephemeral" && !page.nodes.has(node.dataset.key));
    const switched = page.nodes.size === 0;
    page.nodes = seen;
    if (!nodes.length) {
      const empty = el("div", "empty", "Waiting for Lexi's first task… the bot polls the LeadLex sandbox every few seconds.");
      list.replaceChildren(empty);
      return;
    }
    list.replaceChildren(...nodes);
    // Like Slack: stay at the latest message, and always show a new message meant only for you.
    if (nearBottom || fresh || switched) list.scrollTop = list.scrollHeight;
  }

  function renderThread() {
    const pane = $("#thread");
    const parent = page.thread && (page.data.timeline || []).find((item) => item.kind === "message" && item.ts === page.thread);
    if (!parent) page.thread = null;
    $("#pane").hidden = !page.paneOpen;
    pane.hidden = !parent || page.paneOpen;
    $("#panel").hidden = Boolean(parent) || page.paneOpen;
    if (!parent || page.paneOpen) return;
    const body = $("#thread-body");
    const replies = parent.replies || [];
    const items = [messageNode(Object.assign({}, parent, { replies: [] }), "t" + parent.ts)];
    items.push(el("div", "thread-divider", `${replies.length} ${replies.length === 1 ? "reply" : "replies"}`));
    replies.forEach((reply) => items.push(messageNode(Object.assign({ kind: "message" }, reply), "r" + reply.ts)));
    body.replaceChildren(...items);
  }

  // --- Lexi's assistant pane and the DM with the app ---

  function setPaneOpen(open) {
    page.paneOpen = open;
    document.querySelectorAll(".open-pane").forEach((button) => button.setAttribute("aria-pressed", String(open)));
    $("#side").hidden = !open && !page.panelOpen;
  }

  /** Open the pane (Slack sends assistant_thread_started for a new thread; `fresh`: a new chat). */
  async function openPane(fresh) {
    setPaneOpen(true);
    page.paneNote = "";
    if (fresh) $("#pane-body").dataset.signature = "";
    renderThread();
    renderPane();
    const answer = await post("/api/pane", fresh ? { new: true } : {});
    if (!answer.ok) {
      page.paneNote = `lexi-bot did not answer assistant_thread_started (${answer.status ? "HTTP " + answer.status : answer.error}).`;
    }
    refreshState();
  }

  function shownItems(items, prefix) {
    return (items || [])
      .map((item) => ({ item, key: prefix + (item.kind === "ephemeral" ? item.id : item.ts) }))
      .filter(({ key }) => !page.dismissed.has(key));
  }

  /** Put `items` in `list` unless they are what it shows already; stay at the latest message. */
  function fillList(list, items, empty) {
    const signature = page.me + empty + JSON.stringify(items.map(({ key, item }) => [key, item]));
    if (list.dataset.signature === signature) return false;
    list.dataset.signature = signature;
    if (!items.length) list.replaceChildren(el("div", "empty", empty));
    else list.replaceChildren(...items.map(({ item, key }) => messageNode(item, key, "dm")));
    list.scrollTop = list.scrollHeight;
    return true;
  }

  function renderPane() {
    if (!page.paneOpen || !page.data) return;
    const pane = page.data.pane;
    const status = $("#pane-status");
    const prompts = $("#pane-prompts");
    $("#pane-title").textContent = pane ? pane.title || "New chat" : "";
    if (!pane) {
      fillList($("#pane-body"), [], page.paneNote || "Opening Lexi…");
      status.hidden = true;
      prompts.hidden = true;
      return;
    }
    fillList($("#pane-body"), shownItems(pane.messages, "p"), "Starting a chat with Lexi…");
    status.hidden = !pane.status;
    status.textContent = pane.status || "";
    // Slack shows the suggested prompts until the person writes in the thread.
    const asked = pane.messages.some((item) => item.user === page.me);
    prompts.hidden = asked || !pane.prompts.length;
    const signature = JSON.stringify(pane.prompts);
    if (prompts.dataset.signature !== signature) {
      prompts.dataset.signature = signature;
      prompts.replaceChildren(...pane.prompts.map((prompt) => {
        const chip = el("button", "prompt-chip", prompt.title);
        chip.type = "button";
        chip.addEventListener("click", () => ask(prompt.message));
        return chip;
      }));
    }
  }

  async function ask(text) {
    const answer = await post("/api/ask", { text });
    if (!answer.ok) toast(`⚠️ Lexi did not get that: ${answer.error}`);
    refreshState();
  }

  function renderDm() {
    const items = shownItems(page.data.dm.timeline, "d");
    const empty = "Your direct messages with lexi-bot: what it sends only you shows here. Write to ask Lexi something.";
    fillList($("#dm-messages"), items, empty);
  }

  function renderDmCount() {
    const count = (page.data.dm.timeline || []).reduce((n, item) => n + 1 + (item.replies || []).length, 0);
    if (page.view === "dm") page.dmSeen = count;
    const badge = $("#dm-count");
    badge.hidden = count <= page.dmSeen;
    badge.textContent = String(count - page.dmSeen);
  }

  // --- modal, Home, people ---

  function renderModal() {
    const root = $("#modal-root");
    const modal = page.data.modal;
    const open = root.firstElementChild;
    if (!modal) { root.replaceChildren(); return; }
    const view = modal.view;
    const errors = JSON.stringify(modal.errors);
    if (open && open.dataset.viewId === view.id && open.dataset.hash === view.hash) {
      if (open.dataset.errors !== errors) BK.showErrors(open, modal.errors);
      open.dataset.errors = errors;
      return;
    }
    const backdrop = el("div", "modal-backdrop");
    backdrop.dataset.viewId = view.id;
    backdrop.dataset.hash = view.hash;
    backdrop.dataset.errors = errors;
    const dialog = el("div", "modal");
    dialog.setAttribute("role", "dialog");
    dialog.setAttribute("aria-modal", "true");
    const header = el("header", "modal-header");
    const title = el("h2", "modal-title");
    title.appendChild(BK.text(view.title, context()));
    const x = el("button", "icon-button", "✕");
    x.type = "button";
    x.setAttribute("aria-label", "Close");
    header.append(title, x);
    const body = el("div", "modal-body");
    const clear = (event) => {
      const error = event.target.closest(".bk-input")?.querySelector(".bk-error");
      if (error) { error.textContent = ""; error.hidden = true; }
    };
    body.addEventListener("change", clear);
    body.addEventListener("input", clear);
    body.appendChild(BK.blocks(view.blocks, context({ errors: modal.errors, onAction: (d) => click({ surface: "modal" }, d) })));
    const footer = el("footer", "modal-footer");
    const close = el("button", "bk-button modal-close");
    close.type = "button";
    close.appendChild(BK.text(view.close || { type: "plain_text", text: "Cancel" }, context()));
    footer.appendChild(close);
    const cancel = async () => { root.replaceChildren(); await post("/api/close", {}); refreshState(); };
    x.addEventListener("click", cancel);
    close.addEventListener("click", cancel);
    if (view.submit) {
      const submit = el("button", "bk-button bk-primary modal-submit");
      submit.type = "button";
      submit.appendChild(BK.text(view.submit, context()));
      submit.addEventListener("click", async () => {
        const { values, missing } = BK.readInputs(body);
        if (missing.length) {
          BK.showErrors(body, Object.fromEntries(missing.map((id) => [id, "Please complete this required field."])));
          return;
        }
        submit.disabled = true;
        const answer = await post("/api/submit", { values });
        submit.disabled = false;
        if (!answer.ok) toast(`We had some trouble connecting (${answer.error}). Try again?`);
        refreshState();
      });
      footer.appendChild(submit);
    }
    dialog.append(header, body, footer);
    backdrop.appendChild(dialog);
    root.replaceChildren(backdrop);
  }

  function renderHome() {
    const home = $("#home");
    const view = page.data.home;
    if (!view) {
      home.replaceChildren(el("div", "empty", page.homeNote || "Opening the Home tab…"));
      return;
    }
    const signature = JSON.stringify(view);
    if (home.dataset.signature === signature) return;
    home.dataset.signature = signature;
    home.replaceChildren(BK.blocks(view.blocks, context({ onAction: (d) => click({ surface: "home" }, d) })));
  }

  async function openHome() {
    page.homeNote = "";
    const answer = await post("/api/home", {});
    page.homeNote = answer.ok ? "lexi-bot has not published a Home tab for you yet."
      : `lexi-bot did not answer app_home_opened (${answer.status ? "HTTP " + answer.status : answer.error}), so Slack shows no Home tab.`;
    refreshState();
  }

  function renderPeople() {
    const list = $("#people");
    const signature = page.me + JSON.stringify(page.data.people);
    if (list.dataset.signature === signature) return;
    list.dataset.signature = signature;
    list.replaceChildren(...page.data.people.map((p) => {
      const button = el("button", "person" + (p.id === page.me ? " active" : ""));
      button.type = "button";
      button.dataset.person = p.id;
      button.setAttribute("role", "radio");
      button.setAttribute("aria-checked", String(p.id === page.me));
      const words = el("span", "person-words");
      words.append(el("span", "person-name", p.name), el("span", "person-title", p.title));
      button.append(avatar(p.id, true), words);
      button.addEventListener("click", () => switchTo(p.id));
      return button;
    }));
  }

  function switchTo(id) {
    page.me = id;
    localStorage.setItem("lexi-demo-person", id);
    page.nodes.clear();
    page.dismissed.clear();
    $("#composer").placeholder = `Message #lexi-approvals as ${person(id).name} — try /lexi help`;
    page.dmSeen = 0;
    refreshState();
    if (page.view === "home") openHome();
    if (page.paneOpen) openPane(false);
  }

  function render() {
    const data = page.data;
    if (!data.people.some((p) => p.id === page.me)) { switchTo(data.people[0].id); return; }
    renderPeople();
    renderMessages();
    renderThread();
    renderPane();
    renderDmCount();
    if (page.view === "dm") renderDm();
    renderModal();
    if (page.view === "home") renderHome();
  }

  // --- the panel underneath ---

  function rows(table, items, cells) {
    table.replaceChildren(...items.map((item) => {
      const row = el("tr");
      cells(item).forEach(([text, className]) => row.appendChild(el("td", className, text)));
      return row;
    }));
  }

  function statusClass(status) {
    return status >= 500 || status === 0 ? "bad" : status >= 400 ? "warn" : "good";
  }

  function renderPanel(panel) {
    const budget = panel.leadlex.budget;
    $("#budget").textContent = budget.remaining === null ? `· polling every ${panel.leadlex.poll_every}s`
      : `· ${budget.remaining.toLocaleString("en-US")} of ${budget.limit.toLocaleString("en-US")} calls left today · polling every ${panel.leadlex.poll_every}s`;
    rows($("#leadlex-calls"), panel.leadlex.calls.slice(0, 12), (c) => [
      [clock(c.at, true), "muted"], [c.method, "method"], [c.path, "path"], [String(c.status), "status " + statusClass(c.status)],
    ]);
    rows($("#slack-requests"), panel.slack.requests.slice(0, 8), (r) => [
      [clock(r.at, true), "muted"], [r.kind, "method"], [r.summary, "path"],
      [r.status ? String(r.status) : "—", "status " + statusClass(r.status)], [`${r.ms} ms`, "muted"],
    ]);
    rows($("#slack-api"), panel.slack.api.slice(0, 8), (c) => [
      [clock(c.at, true), "muted"], [c.method, "path"], [c.ok ? "ok" : c.error, "status " + (c.ok ? "good" : "bad")],
    ]);
    const log = $("#log");
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    log.textContent = panel.log.join("\n");
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  // --- wiring ---

  function showView(view) {
    page.view = view;
    document.querySelectorAll("[data-nav]").forEach((item) => item.classList.toggle("active", item.dataset.nav === view));
    $("#channel-view").hidden = view !== "channel";
    $("#home-view").hidden = view !== "home";
    $("#dm-view").hidden = view !== "dm";
    if (view === "home") { renderHome(); openHome(); }
    if (view === "dm" && page.data) { renderDm(); renderDmCount(); }
  }

  /** Enter sends what was typed in `box` (Shift-Enter: a new line). */
  function sendOnEnter(box, form, send) {
    box.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); form.requestSubmit(); }
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = box.value.trim();
      if (!text) return;
      box.value = "";
      send(text);
    });
  }

  /** Follow a link to a message of the channel (a Slack permalink) in the page: show it, as Slack does. */
  function followPermalink(event) {
    const link = event.target.closest && event.target.closest("a.bk-link");
    const found = link && /\/archives\/([A-Z0-9]+)\/p(\d{7,})$/.exec(link.getAttribute("href") || "");
    if (!found || !page.data || found[1] !== page.data.channel.id) return;
    event.preventDefault();
    const ts = `${found[2].slice(0, -6)}.${found[2].slice(-6)}`;
    showView("channel");
    const target = document.querySelector(`#messages .msg[data-ts="${ts}"]`);
    if (!target) { toast("That message is not in the channel any more."); return; }
    target.scrollIntoView({ block: "center" });
    target.classList.add("highlight");
    setTimeout(() => target.classList.remove("highlight"), 2500);
  }

  function wire() {
    document.addEventListener("click", followPermalink);
    document.querySelectorAll("[data-nav]").forEach((item) => item.addEventListener("click", () => showView(item.dataset.nav)));
    $("#close-thread").addEventListener("click", () => { page.thread = null; renderThread(); });
    $("#toggle-panel").addEventListener("click", (event) => {
      page.panelOpen = !page.panelOpen;
      event.currentTarget.setAttribute("aria-pressed", String(page.panelOpen));
      if (page.panelOpen) setPaneOpen(false);
      $("#side").hidden = !page.panelOpen && !page.paneOpen;
      renderThread();
    });
    document.querySelectorAll(".open-pane").forEach((button) => button.addEventListener("click", () => {
      if (page.paneOpen) { setPaneOpen(false); renderThread(); } else openPane(false);
    }));
    $("#close-pane").addEventListener("click", () => { setPaneOpen(false); renderThread(); });
    $("#pane-new").addEventListener("click", () => openPane(true));
    sendOnEnter($("#pane-composer"), $("#pane-form"), ask);
    sendOnEnter($("#dm-composer"), $("#dm-form"), async (text) => {
      const answer = await post("/api/dm", { text });
      if (!answer.ok) toast(`⚠️ lexi-bot did not get that: ${answer.error}`);
      refreshState();
    });
    const composer = $("#composer");
    const form = $("#composer-form");
    composer.addEventListener("input", () => { $("#command-hint").hidden = !composer.value.startsWith("/"); });
    composer.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); form.requestSubmit(); }
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const text = composer.value.trim();
      if (!text) return;
      composer.value = "";
      $("#command-hint").hidden = true;
      const answer = await post("/api/type", { text });
      if (!answer.ok) {
        const invalid = answer.error.includes("not a valid command");
        toast(invalid ? answer.error : `${text.split(" ")[0]} failed with the error "${answer.error}"`);
      }
      refreshState();
    });
  }

  // Changes are followed by asking for the version counters about once a second, each answer immediate. A
  // held-open event stream kept headless browsers (screenshots, crawlers) waiting for the page to finish.
  const FOLLOW_MS = 1000;

  async function follow() {
    try {
      const response = await fetch("/api/versions");
      if (response.ok) {
        const versions = await response.json();
        if (versions.slack !== page.versions.slack) { page.versions.slack = versions.slack; refreshState(); }
        if (versions.panel !== page.versions.panel) { page.versions.panel = versions.panel; refreshPanel(); }
      }
    } catch (error) {
      // The demo is stopping or restarting: ask again at the next tick.
    }
    setTimeout(follow, FOLLOW_MS);
  }

  document.addEventListener("DOMContentLoaded", () => {
    wire();
    if (!page.me) page.me = "UALICE";
    refreshState();
    refreshPanel();
  });
  window.addEventListener("load", () => setTimeout(follow, FOLLOW_MS));
})();
