// The conversation review page. Plain JavaScript of the project's own (no CDN, no framework).
// Every text from the server is shown with textContent, never as HTML.
"use strict";

(function () {
  const api = (path) => "api/" + path;
  const $ = (selector, root) => (root || document).querySelector(selector);
  const el = (tag, props, children) => {
    const node = document.createElement(tag);
    Object.entries(props || {}).forEach(([key, value]) => {
      if (key === "text") node.textContent = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("aria") || key === "role" || key === "for") node.setAttribute(key.replace(/^aria/, "aria-").toLowerCase(), value);
      else node[key] = value;
    });
    (children || []).forEach((child) => child && node.appendChild(child));
    return node;
  };

  // -- sign in -------------------------------------------------------------------------------
  const loginForm = $("#login");
  if (loginForm) {
    loginForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const answer = await fetch("login", {
        method: "POST", credentials: "same-origin", headers: {"Content-Type": "application/json"},
        body: JSON.stringify({reviewer: $("#reviewer").value, secret: $("#secret").value}),
      });
      if (answer.ok) { window.location.reload(); return; }
      const body = await answer.json().catch(() => ({}));
      $("#login-error").textContent = body.error || ("sign-in failed (" + answer.status + ")");
    });
    $("#reviewer").focus();
    return;
  }

  // -- the app -------------------------------------------------------------------------------
  const csrf = document.querySelector('meta[name="review-csrf"]').content;
  const me = $("#who").textContent;
  const REPLY = [["good", "g"], ["wrong", "w"], ["unsafe", "u"], ["unhelpful", "h"]];
  const state = {page: 1, total: 0, rows: [], current: null, turn: 0, rails: []};

  function status(text, bad) {
    const node = $("#status");
    node.textContent = text;
    node.className = bad ? "bad" : "";
  }

  async function call(path, options) {
    const answer = await fetch(path, {credentials: "same-origin", ...options,
      headers: {"Content-Type": "application/json", "X-Review-Csrf": csrf, ...((options || {}).headers || {})}});
    const body = await answer.json().catch(() => ({}));
    if (answer.status === 401) { window.location.reload(); throw new Error("signed out"); }
    if (!answer.ok) throw new Error(body.error || ("HTTP " + answer.status));
    return body;
  }

  function filterQuery() {
    const params = new URLSearchParams();
    new FormData($("#filters")).forEach((value, key) => {
      if (key === "rail") { if (value) params.set("rail", value); } else params.set(key, "1");
    });
    params.set("page", String(state.page));
    return params.toString();
  }

  async function loadList() {
    status("Loading conversations...");
    try {
      const body = await call(api("conversations?" + filterQuery()));
      state.total = body.total; state.rows = body.conversations; state.rails = body.rails;
      fillRailFilter(body.rails);
      renderList();
      status("");
    } catch (error) { status(error.message, true); }
  }

  function fillRailFilter(rails) {
    const select = $("#filters select[name=rail]");
    if (select.options.length > 2) return;
    rails.forEach((rail) => select.appendChild(el("option", {value: rail, text: rail})));
  }

  function flags(row) {
    const out = [];
    if (row.model_turns) out.push("model " + row.model_turns);
    if (row.emergency) out.push("emergency");
    if (row.triage) out.push("triage");
    if (row.low_confidence) out.push("low confidence");
    if (row.replaced) out.push("replaced");
    if (row.failed_action) out.push("failed action");
    row.rails.forEach((rail) => out.push("rail " + rail));
    out.push(row.ratings ? row.ratings + " rating(s)" : "not reviewed");
    return out;
  }

  function renderList() {
    const list = $("#conversations");
    list.replaceChildren();
    const pages = Math.max(1, Math.ceil(state.total / 25));
    $("#count").textContent = state.total + " conversation(s)";
    $("#page-no").textContent = "page " + state.page + " of " + pages;
    $("#prev-page").disabled = state.page <= 1;
    $("#next-page").disabled = state.page >= pages;
    state.rows.forEach((row) => {
      const button = el("button", {type: "button", className: "conversation", dataset: {id: row.sender_id}}, [
        el("span", {className: "first", text: row.first_text || "(no message)"}),
        el("span", {className: "meta", text: new Date(row.latest * 1000).toLocaleString() + " · " + row.turns + " turn(s)"}),
        el("span", {className: "flags", text: flags(row).join(" · ")}),
      ]);
      if (state.current && state.current.conversation_id === row.sender_id) button.setAttribute("aria-current", "true");
      button.addEventListener("click", () => openConversation(row.sender_id));
      list.appendChild(el("li", {}, [button]));
    });
  }

  async function openConversation(id) {
    status("Loading conversation...");
    try {
      state.current = await call(api("conversations/" + encodeURIComponent(id)));
      state.turn = 0;
      document.body.classList.add("reading");
      renderConversation();
      renderList();
      status("");
      $("#detail-pane").focus();
    } catch (error) { status(error.message, true); }
  }

  function mine(turnNo, target, rail) {
    return state.current.ratings.find((r) => r.turn === turnNo && r.target === target &&
      (r.rail || "") === (rail || "") && r.reviewer === me);
  }

  function ratingButton(label, key, turnNo, target, value, rail) {
    const pressed = (mine(turnNo, target, rail) || {}).rating === value;
    const button = el("button", {type: "button", className: "rate " + value, text: label + (key ? " (" + key + ")" : ""),
      ariaPressed: pressed ? "true" : "false", dataset: {rating: value, target: target, rail: rail || ""}});
    button.addEventListener("click", () => rate(turnNo, target, value, rail));
    return button;
  }

  function renderTurn(turn, index) {
    const turnNo = index + 1;
    const card = el("article", {className: "turn" + (index === state.turn ? " selected" : ""),
      dataset: {turn: turnNo, outcome: (turn.llm || {}).outcome || ""},
      ariaLabel: "Turn " + turnNo});
    card.appendChild(el("h3", {text: "Turn " + turnNo}));
    card.appendChild(el("p", {className: "user", text: turn.user || ""}));
    const confidence = typeof turn.confidence === "number" ? turn.confidence.toFixed(2) : "?";
    const intentSelect = el("select", {className: "intent-select", ariaLabel: "Correct intent of turn " + turnNo});
    intentSelect.appendChild(el("option", {value: "", text: "correct intent..."}));
    state.current.intents.forEach((name) => intentSelect.appendChild(el("option", {value: name, text: name})));
    const relabelled = mine(turnNo, "intent", "");
    if (relabelled) intentSelect.value = relabelled.rating;
    intentSelect.addEventListener("change", () => { if (intentSelect.value) rate(turnNo, "intent", intentSelect.value, ""); });
    card.appendChild(el("p", {className: "intent"}, [el("span", {text: "intent " + turn.intent + " (" + confidence + ") "}), intentSelect]));
    if (turn.emergency_tier) card.appendChild(el("p", {className: "tier", text: "emergency tier: " + turn.emergency_tier}));
    (turn.triage || []).forEach((note) => card.appendChild(el("p", {className: "triage", text: "triage: " + note})));

    const rails = el("ul", {className: "rails"});
    turn.rails.forEach((rail) => {
      const score = rail.score === null || rail.score === undefined ? "" : " " + rail.score + " ≥ " + rail.threshold;
      rails.appendChild(el("li", {}, [
        el("span", {text: rail.stage + ": " + rail.rail + " [" + rail.source + score + "] " + (rail.reason || "")}),
        ratingButton("correct", "", turnNo, "rail", "correct", rail.rail),
        ratingButton("false alarm", "", turnNo, "rail", "false_alarm", rail.rail),
      ]));
    });
    const missedSelect = el("select", {className: "missed-select", ariaLabel: "Rail that missed turn " + turnNo});
    missedSelect.appendChild(el("option", {value: "", text: "a rail missed this..."}));
    state.current.rails.forEach((name) => missedSelect.appendChild(el("option", {value: name, text: name})));
    missedSelect.addEventListener("change", () => { if (missedSelect.value) rate(turnNo, "rail", "missed", missedSelect.value); });
    rails.appendChild(el("li", {className: "missed"}, [missedSelect]));
    card.appendChild(rails);

    const actions = el("ul", {className: "actions"});
    turn.actions.forEach((action) => actions.appendChild(el("li", {text: action})));
    card.appendChild(actions);
    if (turn.llm) {
      const llm = turn.llm;
      const text = llm.new_tokens === null || llm.new_tokens === undefined ? "llm: " + llm.outcome + " (the model was not asked)"
        : "llm: " + llm.model + " " + llm.outcome + " " + llm.new_tokens + " tokens " + llm.latency_s + " s";
      card.appendChild(el("p", {className: "llm", text: text}));
      if (llm.retrieval) card.appendChild(el("p", {className: "sources", text: "sources: " + (llm.retrieval.sources || []).join(", ")}));
      (llm.output_rails || []).forEach((v) => card.appendChild(el("p", {className: "output-rail", text: "rail on the reply: " + v})));
    }
    (turn.action_failures || []).forEach((f) => card.appendChild(el("p", {className: "failure", text: "action failed: " + f})));
    turn.bot.forEach((text) => card.appendChild(el("p", {className: "bot", text: text || ""})));

    if (turn.bot.length) {
      const reply = mine(turnNo, "reply", "") || {};
      const row = el("div", {className: "reply-rating", role: "group", ariaLabel: "Rate the reply of turn " + turnNo});
      REPLY.forEach(([value, key]) => row.appendChild(ratingButton(value, key, turnNo, "reply", value, "")));
      card.appendChild(row);
      const corrected = el("textarea", {className: "corrected", rows: 2, maxLength: 2000, placeholder: "corrected reply (optional)",
        ariaLabel: "Corrected reply of turn " + turnNo, value: reply.corrected || ""});
      const note = el("textarea", {className: "note", rows: 1, maxLength: 2000, placeholder: "note (optional)",
        ariaLabel: "Note on turn " + turnNo, value: reply.note || ""});
      const save = el("button", {type: "button", className: "save", text: "Save text"});
      save.addEventListener("click", () => saveText(turnNo, card));
      card.appendChild(el("div", {className: "texts"}, [corrected, note, save]));
    }
    const others = state.current.ratings.filter((r) => r.turn === turnNo && r.reviewer !== me);
    if (others.length) {
      card.appendChild(el("p", {className: "others", text: "others: " + others.map((r) =>
        r.reviewer + " " + r.target + (r.rail ? "/" + r.rail : "") + "=" + r.rating).join("; ")}));
    }
    card.addEventListener("click", () => { state.turn = index; markSelected(); });
    return card;
  }

  function renderConversation() {
    const pane = $("#detail-pane");
    pane.replaceChildren();
    const back = el("button", {type: "button", className: "back", text: "← conversations"});
    back.addEventListener("click", () => { document.body.classList.remove("reading"); });
    pane.appendChild(el("div", {className: "detail-head"}, [back,
      el("h2", {text: "Conversation " + state.current.conversation_id})]));
    state.current.turns.forEach((turn, index) => pane.appendChild(renderTurn(turn, index)));
  }

  function markSelected() {
    document.querySelectorAll(".turn").forEach((card, index) => card.classList.toggle("selected", index === state.turn));
    const selected = document.querySelectorAll(".turn")[state.turn];
    if (selected) selected.scrollIntoView({block: "nearest"});
  }

  async function rate(turnNo, target, value, rail, extra) {
    const body = {conversation_id: state.current.conversation_id, turn: turnNo, target: target, rating: value, ...(extra || {})};
    if (rail) body.rail = rail;
    if (target === "reply" && !extra) {
      const card = document.querySelectorAll(".turn")[turnNo - 1];
      body.corrected = $(".corrected", card).value;
      body.note = $(".note", card).value;
    }
    try {
      const stored = await call(api("ratings"), {method: "POST", body: JSON.stringify(body)});
      state.current.ratings = state.current.ratings.filter((r) => !(r.turn === turnNo && r.target === target &&
        (r.rail || "") === (rail || "") && r.reviewer === me)).concat([stored]);
      const scroll = $("#detail-pane").scrollTop;
      renderConversation();
      $("#detail-pane").scrollTop = scroll;
      state.turn = turnNo - 1; markSelected();
      status("Saved: turn " + turnNo + " " + target + (rail ? " " + rail : "") + " = " + value);
    } catch (error) { status(error.message, true); }
  }

  function saveText(turnNo, card) {
    const current = mine(turnNo, "reply", "");
    const value = current ? current.rating : ($(".corrected", card).value.trim() ? "wrong" : "good");
    rate(turnNo, "reply", value, "");
  }

  function selectedCard() { return document.querySelectorAll(".turn")[state.turn]; }

  document.addEventListener("keydown", (event) => {
    const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName);
    if (event.key === "Escape") {
      if (typing) { document.activeElement.blur(); $("#detail-pane").focus(); }
      else document.body.classList.remove("reading");
      return;
    }
    if (typing) {
      if (event.key === "Enter" && event.ctrlKey && document.activeElement.tagName === "TEXTAREA") {
        event.preventDefault();
        saveText(state.turn + 1, selectedCard());
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "?") { toggleHelp(); return; }
    if (event.key === "]" || event.key === "[") {
      const ids = state.rows.map((r) => r.sender_id);
      const at = state.current ? ids.indexOf(state.current.conversation_id) : -1;
      const next = ids[event.key === "]" ? at + 1 : Math.max(0, at - 1)];
      if (next) openConversation(next);
      return;
    }
    if (!state.current) return;
    const turns = state.current.turns.length;
    const card = selectedCard();
    const turnNo = state.turn + 1;
    const reply = REPLY.find(([, key]) => key === event.key);
    if (event.key === "j") { state.turn = Math.min(turns - 1, state.turn + 1); markSelected(); }
    else if (event.key === "k") { state.turn = Math.max(0, state.turn - 1); markSelected(); }
    else if (reply && card && $(".reply-rating", card)) rate(turnNo, "reply", reply[0], "");
    else if ((event.key === "c" || event.key === "f") && state.current.turns[state.turn].rails.length) {
      rate(turnNo, "rail", event.key === "c" ? "correct" : "false_alarm", state.current.turns[state.turn].rails[0].rail);
    } else if (event.key === "m" && card) $(".missed-select", card).focus();
    else if (event.key === "i" && card) $(".intent-select", card).focus();
    else if (event.key === "e" && card && $(".corrected", card)) $(".corrected", card).focus();
    else if (event.key === "n" && card && $(".note", card)) $(".note", card).focus();
    else return;
    event.preventDefault();
  });

  function toggleHelp() {
    const help = $("#help");
    help.hidden = !help.hidden;
    $("#help-button").setAttribute("aria-expanded", String(!help.hidden));
  }

  $("#help-button").addEventListener("click", toggleHelp);
  $("#logout").addEventListener("click", async () => {
    await fetch("logout", {method: "POST", credentials: "same-origin"});
    window.location.reload();
  });
  $("#filters").addEventListener("change", () => { state.page = 1; loadList(); });
  $("#prev-page").addEventListener("click", () => { state.page -= 1; loadList(); });
  $("#next-page").addEventListener("click", () => { state.page += 1; loadList(); });
  loadList();
})();
