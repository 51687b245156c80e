/* Block Kit and mrkdwn as Slack renders them, built with createElement and textContent only: message text
   comes from an AI and is never parsed as HTML. Exposes window.BlockKit. */
(function (global) {
  "use strict";

  const ENTITIES = { lt: "<", gt: ">", amp: "&" };
  const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December"];
  const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
  // Inline mrkdwn: `code`, <special|links>, *bold*, _italic_, ~strike~ (markers need word boundaries).
  const INLINE = new RegExp([
    "`([^`\\n]+)`",
    "<([^<>\\n]+)>",
    "(?<![\\w*])\\*(?![\\s*])([^*\\n]*?[^\\s*])\\*(?![\\w*])",
    "(?<![\\w_])_(?![\\s_])([^_\\n]*?[^\\s_])_(?![\\w_])",
    "(?<![\\w~])~(?![\\s~])([^~\\n]*?[^\\s~])~(?![\\w~])",
  ].join("|"), "g");

  /** Create an element with an optional class and text. */
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  /** Turn Slack's three entities back into characters, for display only. */
  function unescape(text) {
    return String(text).replace(/&(lt|gt|amp);/g, (_, name) => ENTITIES[name]);
  }

  function ordinal(n) {
    const tens = n % 100;
    if (tens >= 11 && tens <= 13) return n + "th";
    return n + ({ 1: "st", 2: "nd", 3: "rd" }[n % 10] || "th");
  }

  function clock(date, seconds) {
    const h = date.getHours() % 12 || 12;
    const mm = String(date.getMinutes()).padStart(2, "0");
    const ss = seconds ? ":" + String(date.getSeconds()).padStart(2, "0") : "";
    return `${h}:${mm}${ss} ${date.getHours() < 12 ? "AM" : "PM"}`;
  }

  function sameDay(a, b) {
    return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
  }

  /** Replace the {tokens} of a <!date^…> format with the viewer's local date and time. */
  function formatDate(seconds, format, now) {
    const date = new Date(seconds * 1000);
    const plain = {
      date_num: `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, "0")}-${String(date.getDate()).padStart(2, "0")}`,
      date: `${MONTHS[date.getMonth()]} ${ordinal(date.getDate())}, ${date.getFullYear()}`,
      date_short: `${MONTHS[date.getMonth()].slice(0, 3)} ${date.getDate()}, ${date.getFullYear()}`,
      date_long: `${DAYS[date.getDay()]}, ${MONTHS[date.getMonth()]} ${ordinal(date.getDate())}, ${date.getFullYear()}`,
      time: clock(date, false),
      time_secs: clock(date, true),
    };
    const relative = () => {
      const day = 86400000;
      if (sameDay(date, now)) return "Today";
      if (sameDay(date, new Date(now.getTime() - day))) return "Yesterday";
      if (sameDay(date, new Date(now.getTime() + day))) return "Tomorrow";
      return null;
    };
    return format.replace(/\{(\w+)\}/g, (whole, token) => {
      if (token in plain) return plain[token];
      const pretty = token.match(/^(date|date_short|date_long)_pretty$/);
      if (pretty) return relative() || plain[pretty[1]];
      if (token === "ago") {
        const minutes = Math.round((now - date) / 60000);
        return minutes < 1 ? "just now" : minutes < 60 ? `${minutes} minutes ago` : `${Math.round(minutes / 60)} hours ago`;
      }
      return whole;
    });
  }

  /** Render the inside of <…>: mentions, channels, broadcasts, dates and links. */
  function special(body, ctx) {
    const bar = body.indexOf("|");
    const target = bar < 0 ? body : body.slice(0, bar);
    const label = bar < 0 ? null : unescape(body.slice(bar + 1));
    const people = ctx.people || {};
    if (/^@[UW][A-Z0-9]+$/.test(target)) {
      const id = target.slice(1);
      const chip = el("span", "bk-mention" + (id === ctx.me ? " bk-mention-me" : ""), "@" + (people[id] || label || id));
      chip.dataset.user = id;
      return chip;
    }
    if (/^#[CGD][A-Z0-9]+$/.test(target)) {
      const id = target.slice(1);
      return el("span", "bk-mention bk-channel", "#" + ((ctx.channels || {})[id] || label || id));
    }
    if (target.startsWith("!date^")) {
      const parts = target.split("^");
      const seconds = Number(parts[1]);
      if (!Number.isFinite(seconds) || parts.length < 3) return document.createTextNode(label || "");
      const node = el("time", "bk-date", formatDate(seconds, parts[2], ctx.now || new Date()));
      node.dateTime = new Date(seconds * 1000).toISOString();
      node.title = node.dateTime;
      return node;
    }
    if (/^!(here|channel|everyone)$/.test(target)) return el("span", "bk-mention bk-broadcast", "@" + target.slice(1));
    if (target.startsWith("!subteam^")) return el("span", "bk-mention", label || "@group");
    if (target.startsWith("!")) return document.createTextNode(label || "");
    const url = unescape(target);
    if (/^(https?:\/\/|mailto:)/i.test(url)) {
      const link = el("a", "bk-link", label || url);
      link.href = url;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      return link;
    }
    return document.createTextNode("<" + unescape(body) + ">");
  }

  /** Append inline mrkdwn (no code blocks) to `parent`. */
  function inline(text, parent, ctx) {
    let last = 0;
    INLINE.lastIndex = 0;
    const matches = Array.from(text.matchAll(INLINE));
    for (const match of matches) {
      if (match.index > last) parent.appendChild(document.createTextNode(unescape(text.slice(last, match.index))));
      const [, code, angle, bold, italic, strike] = match;
      if (code !== undefined) parent.appendChild(el("code", "bk-code", unescape(code)));
      else if (angle !== undefined) parent.appendChild(special(angle, ctx));
      else {
        const tag = bold !== undefined ? "b" : italic !== undefined ? "i" : "s";
        const node = el(tag);
        inline(bold !== undefined ? bold : italic !== undefined ? italic : strike, node, ctx);
        parent.appendChild(node);
      }
      last = match.index + match[0].length;
    }
    if (last < text.length) parent.appendChild(document.createTextNode(unescape(text.slice(last))));
  }

  /** Render a mrkdwn string: ```pre``` blocks, then inline formatting; newlines are kept by CSS. */
  function mrkdwn(text, ctx) {
    const root = el("span", "bk-mrkdwn");
    const pieces = String(text || "").split("```");
    pieces.forEach((piece, index) => {
      const isCode = index % 2 === 1 && index < pieces.length - 1;
      if (isCode) root.appendChild(el("pre", "bk-pre", unescape(piece.replace(/^\n/, ""))));
      else inline(index % 2 === 1 ? "```" + piece : piece, root, ctx);
    });
    return root;
  }

  /** Render a text object (plain_text or mrkdwn). */
  function text(obj, ctx) {
    if (!obj) return el("span");
    if (obj.type === "mrkdwn") return mrkdwn(obj.text, ctx);
    return el("span", "bk-plain", unescape(obj.text || ""));
  }

  /** Show a confirm dialog; call `proceed` only when the person confirms. */
  function confirmThen(confirm, ctx, proceed) {
    const backdrop = el("div", "bk-confirm-backdrop");
    const dialog = el("div", "bk-confirm");
    dialog.setAttribute("role", "alertdialog");
    const title = el("h2", "bk-confirm-title");
    title.appendChild(text(confirm.title, ctx));
    const body = el("div", "bk-confirm-text");
    body.appendChild(text(confirm.text, ctx));
    const row = el("div", "bk-confirm-buttons");
    const deny = el("button", "bk-button bk-confirm-deny");
    deny.appendChild(text(confirm.deny || { type: "plain_text", text: "Cancel" }, ctx));
    const ok = el("button", "bk-button bk-confirm-ok bk-" + (confirm.style === "danger" ? "danger" : "primary"));
    ok.appendChild(text(confirm.confirm || { type: "plain_text", text: "Yes" }, ctx));
    const close = () => backdrop.remove();
    deny.addEventListener("click", close);
    ok.addEventListener("click", () => { close(); proceed(); });
    backdrop.addEventListener("keydown", (event) => { if (event.key === "Escape") close(); });
    row.append(deny, ok);
    dialog.append(title, body, row);
    backdrop.appendChild(dialog);
    document.body.appendChild(backdrop);
    ok.focus();
    return backdrop;
  }

  /** Report an action to the page, after the element's confirm dialog when it has one. */
  function act(element, detail, ctx) {
    const send = () => ctx.onAction && ctx.onAction(detail);
    if (element.confirm) confirmThen(element.confirm, ctx, send);
    else send();
  }

  function optionList(element) {
    const options = (element.options || []).slice();
    (element.option_groups || []).forEach((group) => options.push(...(group.options || [])));
    return options;
  }

  /** Render an interactive element of an actions block or a section accessory. */
  function element(item, where, ctx) {
    const detail = (extra) => Object.assign({ block: where.block, element: where.element, action_id: item.action_id }, extra);
    if (item.type === "button") {
      const button = el("button", "bk-button" + (item.style ? " bk-" + item.style : ""));
      button.type = "button";
      button.appendChild(text(item.text, ctx));
      button.dataset.actionId = item.action_id || "";
      if (item.url) {
        button.addEventListener("click", () => global.open(item.url, "_blank", "noopener"));
      } else {
        button.addEventListener("click", () => act(item, detail({ value: item.value }), ctx));
      }
      return button;
    }
    if (item.type === "static_select" || item.type === "overflow") {
      const select = el("select", "bk-select" + (item.type === "overflow" ? " bk-overflow" : ""));
      const prompt = el("option", null, item.type === "overflow" ? "⋯" : unescape((item.placeholder || {}).text || "Select an item"));
      prompt.value = "";
      select.appendChild(prompt);
      optionList(item).forEach((option) => {
        const node = el("option", null, unescape((option.text || {}).text || option.value));
        node.value = option.value;
        select.appendChild(node);
      });
      select.addEventListener("change", () => {
        if (select.value) act(item, detail({ selected: select.value }), ctx);
        if (item.type === "overflow") select.value = "";
      });
      return select;
    }
    if (item.type === "image") return image(item);
    return el("span", "bk-unsupported", `[${item.type}]`);
  }

  function image(item) {
    // Offline: remote images are not fetched; their alt text stands in.
    const box = el("span", "bk-img", item.alt_text || "image");
    box.title = item.image_url || "";
    return box;
  }

  /** Render an input element of a modal, named by its block and action ids. */
  function inputElement(block, ctx) {
    const item = block.element || {};
    const name = `${block.block_id}/${item.action_id}`;
    let node;
    if (item.type === "plain_text_input") {
      node = el(item.multiline ? "textarea" : "input", "bk-text-input");
      if (!item.multiline) node.type = "text";
      if (item.max_length) node.maxLength = item.max_length;
      if (item.placeholder) node.placeholder = unescape(item.placeholder.text);
      if (item.initial_value) node.value = item.initial_value;
    } else if (item.type === "radio_buttons" || item.type === "checkboxes") {
      node = el("div", "bk-choices");
      node.setAttribute("role", item.type === "radio_buttons" ? "radiogroup" : "group");
      const initial = [item.initial_option, ...(item.initial_options || [])].filter(Boolean).map((o) => o.value);
      optionList(item).forEach((option) => {
        const label = el("label", "bk-choice");
        const box = el("input");
        box.type = item.type === "radio_buttons" ? "radio" : "checkbox";
        box.name = name;
        box.value = option.value;
        box.checked = initial.includes(option.value);
        const words = el("span", "bk-choice-text");
        words.appendChild(text(option.text, ctx));
        if (option.description) words.appendChild(el("span", "bk-choice-description", unescape(option.description.text)));
        label.append(box, words);
        node.appendChild(label);
      });
    } else if (item.type === "static_select" || item.type === "users_select") {
      node = el("select", "bk-select");
      const prompt = el("option", null, unescape((item.placeholder || {}).text || "Select an item"));
      prompt.value = "";
      node.appendChild(prompt);
      const options = item.type === "users_select"
        ? Object.entries(ctx.people || {}).map(([id, person]) => ({ value: id, text: { text: person } }))
        : optionList(item);
      options.forEach((option) => {
        const entry = el("option", null, unescape(option.text.text));
        entry.value = option.value;
        node.appendChild(entry);
      });
      node.value = (item.initial_option || {}).value || item.initial_user || "";
    } else if (item.type === "datepicker") {
      node = el("input", "bk-text-input");
      node.type = "date";
      node.value = item.initial_date || "";
    } else {
      node = el("span", "bk-unsupported", `[${item.type}]`);
    }
    node.dataset.input = item.type || "";
    node.dataset.name = name;
    return node;
  }

  /** Render one block; `index` is its position, which the page sends back when something in it is used. */
  function block(item, index, ctx) {
    const node = el(item.type === "header" ? "h3" : "div", "bk-block bk-" + item.type);
    node.dataset.type = item.type;
    if (item.block_id) node.dataset.blockId = item.block_id;
    if (item.type === "header") node.appendChild(text(item.text, ctx));
    else if (item.type === "section") {
      const body = el("div", "bk-section-body");
      if (item.text) body.appendChild(el("div", "bk-section-text")).appendChild(text(item.text, ctx));
      if (item.fields) {
        const grid = el("div", "bk-fields");
        item.fields.forEach((field) => grid.appendChild(el("div", "bk-field")).appendChild(text(field, ctx)));
        body.appendChild(grid);
      }
      node.appendChild(body);
      if (item.accessory) {
        node.appendChild(el("div", "bk-accessory")).appendChild(element(item.accessory, { block: index, element: -1 }, ctx));
      }
    } else if (item.type === "context") {
      (item.elements || []).forEach((part) => node.appendChild(part.type === "image" ? image(part) : text(part, ctx)));
    } else if (item.type === "divider") {
      node.appendChild(el("hr"));
    } else if (item.type === "actions") {
      (item.elements || []).forEach((part, position) => node.appendChild(element(part, { block: index, element: position }, ctx)));
    } else if (item.type === "input") {
      const label = el("label", "bk-input-label");
      label.appendChild(text(item.label, ctx));
      if (item.optional) label.appendChild(el("span", "bk-optional", " (optional)"));
      node.appendChild(label);
      node.appendChild(inputElement(item, ctx));
      if (item.hint) node.appendChild(el("div", "bk-hint")).appendChild(text(item.hint, ctx));
      const error = el("div", "bk-error", ((ctx.errors || {})[item.block_id]) || "");
      error.hidden = !error.textContent;
      node.appendChild(error);
      node.dataset.optional = item.optional ? "true" : "false";
    } else if (item.type === "image") {
      node.appendChild(image(item));
    } else if (item.type === "markdown") {
      node.appendChild(el("span", "bk-plain", item.text || ""));
    } else {
      node.appendChild(el("span", "bk-unsupported", `This ${item.type} block is not shown in the demo.`));
    }
    return node;
  }

  /** Render a list of blocks. */
  function blocks(list, ctx) {
    const root = el("div", "bk-blocks");
    (list || []).forEach((item, index) => { if (item && item.type) root.appendChild(block(item, index, ctx)); });
    return root;
  }

  /** Read a modal's inputs as {block_id: {action_id: value}}; also list the required ones left empty. */
  function readInputs(root) {
    const values = {};
    const missing = [];
    root.querySelectorAll(".bk-input").forEach((blockNode) => {
      const field = blockNode.querySelector("[data-name]");
      if (!field) return;
      const [blockId, actionId] = field.dataset.name.split("/");
      let value;
      if (field.dataset.input === "radio_buttons") {
        const chosen = field.querySelector("input:checked");
        value = chosen ? chosen.value : null;
      } else if (field.dataset.input === "checkboxes") {
        value = Array.from(field.querySelectorAll("input:checked")).map((box) => box.value);
      } else {
        value = field.value === undefined || field.value === "" ? null : field.value;
      }
      const empty = value === null || (Array.isArray(value) && value.length === 0) || (typeof value === "string" && !value.trim());
      if (empty && blockNode.dataset.optional !== "true") missing.push(blockId);
      (values[blockId] = values[blockId] || {})[actionId] = value;
    });
    return { values, missing };
  }

  /** Show `errors` ({block_id: message}) under a modal's fields, clearing the others. */
  function showErrors(root, errors) {
    root.querySelectorAll(".bk-input").forEach((blockNode) => {
      const error = blockNode.querySelector(".bk-error");
      const message = (errors || {})[blockNode.dataset.blockId] || "";
      error.textContent = message;
      error.hidden = !message;
    });
  }

  global.BlockKit = { blocks, block, text, mrkdwn, unescape, formatDate, confirmThen, readInputs, showErrors };
})(window);
