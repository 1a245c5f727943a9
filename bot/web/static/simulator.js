// Resident simulator: the page talks to the web app, which plays WeChat's server
// (POST /simulator/api/send) and keeps what the assistant pushes through the
// customer-service API (GET /simulator/api/inbox). All text goes in through
// textContent: residents' and the assistant's words are never parsed as HTML.
"use strict";

(function () {
  const POLL_MS = 2000;
  const MAX_LOG = 200;

  const $ = (id) => document.getElementById(id);
  const els = {
    openid: $("openid"),
    messages: $("messages"),
    typing: $("typing"),
    text: $("text"),
    form: $("composer"),
    send: $("send"),
    newResident: $("new-resident"),
    locationButton: $("send-location"),
    locationMenu: $("location-menu"),
    locationCancel: $("location-cancel"),
    imageButton: $("send-image"),
    ticketList: $("ticket-list"),
    noTickets: $("no-tickets"),
    refreshTickets: $("refresh-tickets"),
  };

  // -- who the resident is: one OpenID per tab, remembered across reloads ------------

  function newOpenId() {
    // Real OpenIDs are 28 characters of [A-Za-z0-9_-] starting with "o".
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const bytes = new Uint8Array(24);
    crypto.getRandomValues(bytes);
    let id = "oSim";
    bytes.forEach((b) => { id += alphabet[b % 64]; });
    return id;
  }

  function storageGet(store, key) {
    try { return store.getItem(key); } catch (e) { return null; }
  }
  function storageSet(store, key, value) {
    try { store.setItem(key, value); } catch (e) { /* private mode: keep in memory */ }
  }

  let openid = storageGet(sessionStorage, "sim.openid") || storageGet(localStorage, "sim.openid");
  if (!openid || !/^[A-Za-z0-9_-]{1,64}$/.test(openid)) {
    openid = newOpenId();
  }
  function rememberOpenId() {
    storageSet(sessionStorage, "sim.openid", openid);
    storageSet(localStorage, "sim.openid", openid);
  }
  rememberOpenId();

  // -- the chat log (kept per OpenID so a reload shows the conversation) -------------

  let log = [];
  let after = 0;

  function loadLog() {
    try {
      log = JSON.parse(storageGet(localStorage, "sim.log." + openid) || "[]");
      if (!Array.isArray(log)) log = [];
    } catch (e) {
      log = [];
    }
    after = parseInt(storageGet(localStorage, "sim.after." + openid) || "0", 10) || 0;
  }
  function saveLog() {
    log = log.slice(-MAX_LOG);
    storageSet(localStorage, "sim.log." + openid, JSON.stringify(log));
    storageSet(localStorage, "sim.after." + openid, String(after));
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function render(entry) {
    const item = el("li", "msg " + entry.from + (entry.error ? " error" : ""));
    const bubble = el("div", "bubble");
    if (entry.from !== "system") {
      item.appendChild(el("span", "avatar", entry.from === "resident" ? "我" : "助"));
    }
    if (entry.tag) bubble.appendChild(el("span", "tag", entry.tag));
    if (entry.kind === "image" && /^https?:\/\//.test(entry.url || "")) {
      const img = document.createElement("img");
      img.alt = "图片";
      img.src = entry.url;
      bubble.appendChild(img);
    } else if (entry.kind === "location") {
      bubble.appendChild(document.createTextNode("📍 " + (entry.label || "位置")));
      bubble.appendChild(el("span", "tag", Number(entry.lat).toFixed(4) + ", " + Number(entry.lon).toFixed(4)));
    } else {
      bubble.appendChild(document.createTextNode(entry.text || ""));
    }
    item.appendChild(bubble);
    els.messages.appendChild(item);
    els.messages.scrollTop = els.messages.scrollHeight;
  }

  function add(entry) {
    log.push(entry);
    saveLog();
    render(entry);
  }

  function showAll() {
    els.openid.textContent = openid;
    els.messages.replaceChildren();
    if (log.length === 0) {
      render({ from: "system", text: "这是模拟的公众号对话：消息经真实的消息接口发给邻里助手。试试说“你好”或“暖气不热”。" });
    }
    log.forEach(render);
  }

  // -- sending ------------------------------------------------------------------------

  let queue = Promise.resolve();
  let pending = 0;

  function setBusy(delta) {
    pending += delta;
    els.typing.hidden = pending === 0;
  }

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  async function post(payload) {
    const response = await fetch("/simulator/api/send", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
      body: JSON.stringify(Object.assign({ openid: openid }, payload)),
    });
    let data = {};
    try { data = await response.json(); } catch (e) { data = {}; }
    if (!response.ok) {
      throw new Error(data.error || ("HTTP " + response.status));
    }
    return data;
  }

  // Messages go out one after another, as from one phone, so replies stay in order.
  function send(payload, entry) {
    add(entry);
    setBusy(1);
    queue = queue.then(async () => {
      try {
        const data = await post(payload);
        if (data.reply) {
          add({ from: "account", kind: "text", text: data.reply });
        } else if (data.deferred) {
          add({ from: "system", text: "公众号未即时回复，回答将通过客服消息送达" });
        }
      } catch (error) {
        add({ from: "system", error: true, text: "发送失败：" + error.message });
      } finally {
        setBusy(-1);
        refreshTickets();
      }
    });
    return queue;
  }

  els.form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = els.text.value;
    if (!text.trim()) return;
    els.text.value = "";
    send({ text: text }, { from: "resident", kind: "text", text: text });
    els.text.focus();
  });

  els.locationButton.addEventListener("click", () => {
    els.locationMenu.hidden = !els.locationMenu.hidden;
  });
  els.locationCancel.addEventListener("click", () => { els.locationMenu.hidden = true; });
  els.locationMenu.querySelectorAll("button.place").forEach((button) => {
    button.addEventListener("click", () => {
      els.locationMenu.hidden = true;
      const place = {
        lat: parseFloat(button.dataset.lat),
        lon: parseFloat(button.dataset.lon),
        label: button.dataset.label || "",
      };
      send({ location: place }, Object.assign({ from: "resident", kind: "location" }, place));
    });
  });

  els.imageButton.addEventListener("click", () => {
    // WeChat hands the assistant a PicUrl; here it is a picture this app serves.
    const url = new URL(els.imageButton.dataset.photo, window.location.href).href;
    send({ image_url: url }, { from: "resident", kind: "image", url: url });
  });

  els.newResident.addEventListener("click", () => {
    openid = newOpenId();
    rememberOpenId();
    loadLog();
    showAll();
    refreshTickets();
  });

  // -- what arrives later: customer-service messages ---------------------------------

  async function poll() {
    try {
      const asked = openid;
      const response = await fetch(
        "/simulator/api/inbox?openid=" + encodeURIComponent(asked) + "&after=" + after,
      );
      if (response.ok && asked === openid) {
        const data = await response.json();
        const instance = storageGet(localStorage, "sim.instance." + asked);
        if (data.instance && instance !== data.instance) {
          // The web app restarted and numbers its messages from 1 again.
          storageSet(localStorage, "sim.instance." + asked, data.instance);
          if (instance !== null && after > 0) {
            after = 0;
            saveLog();
            window.setTimeout(poll, 0);
            return;
          }
        }
        const messages = Array.isArray(data.messages) ? data.messages : [];
        messages.forEach((m) => {
          after = Math.max(after, m.id);
          add({ from: "account", kind: "text", tag: "客服消息", text: m.content });
        });
        if (messages.length) {
          saveLog();
          refreshTickets();
        }
      }
    } catch (e) {
      /* the web app restarting: try again next round */
    }
    window.setTimeout(poll, POLL_MS);
  }

  // -- my tickets ---------------------------------------------------------------------

  let ticketsRequest = 0;

  async function refreshTickets() {
    const mine = ++ticketsRequest;
    try {
      const response = await fetch("/simulator/api/tickets?openid=" + encodeURIComponent(openid));
      if (!response.ok || mine !== ticketsRequest) return;
      const data = await response.json();
      if (mine !== ticketsRequest) return;
      showTickets(Array.isArray(data.tickets) ? data.tickets : []);
    } catch (e) {
      /* keep the list shown */
    }
  }

  function showTickets(tickets) {
    els.ticketList.replaceChildren();
    els.noTickets.hidden = tickets.length > 0;
    tickets.forEach((t) => {
      const item = el("li", "ticket");
      item.dataset.number = t.number;
      const top = el("div", "top");
      top.appendChild(el("span", "number", t.number));
      top.appendChild(el("span", "status " + String(t.status).replace(/[^a-z]/g, ""), t.status_label));
      item.appendChild(top);
      item.appendChild(el("div", "category", t.category));
      const where = [t.community, t.grid].filter(Boolean).join(" · ") || (t.level + "处理");
      item.appendChild(el("div", "meta", "网格：" + where));
      item.appendChild(el("div", "meta", "处理人：" + (t.handler || "—")));
      if (t.created) item.appendChild(el("div", "meta", "提交于 " + t.created));
      els.ticketList.appendChild(item);
    });
  }

  els.refreshTickets.addEventListener("click", refreshTickets);

  loadLog();
  showAll();
  refreshTickets();
  poll();
})();
