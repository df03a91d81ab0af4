// The live wall: cards arrive over SSE (htmx's sse extension swaps new ones in at the top).
// Here: a card for a ticket already shown replaces it in place, a closed ticket leaves, the
// wall keeps at most data-max cards (oldest dropped), an urgent new alert plays the cue
// unless muted, and after a reconnect (and every ten minutes) the cards are reloaded so
// nothing missed stays missing.
(function () {
  "use strict";
  var wall, cards, live, sound, cue, empty, count, max;
  var RESYNC_MS = 10 * 60 * 1000;
  var opened = 0;
  var soundOn = false;

  function parse(html) {
    var tpl = document.createElement("template");
    tpl.innerHTML = html.trim();
    return tpl.content.firstElementChild;
  }

  function refreshCount() {
    var n = cards.children.length;
    count.textContent = String(n);
    empty.hidden = n > 0;
  }

  function trim() {
    while (cards.children.length > max) {
      cards.removeChild(cards.lastElementChild);
    }
  }

  function playCue() {
    wall.dataset.cues = String(parseInt(wall.dataset.cues || "0", 10) + 1);
    if (!soundOn) { return; }
    cue.currentTime = 0;
    var played = cue.play();
    if (played && played.catch) { played.catch(function () { /* autoplay refused: muted */ }); }
  }

  // An alert's card can arrive before its snapshot does (two MQTT messages): a thumbnail
  // that is not there yet is asked for again, 1, 2, 4, 8 s later.
  function retryThumbnail(evt) {
    var img = evt.target;
    if (!img || img.tagName !== "IMG") { return; }
    var tries = parseInt(img.dataset.tries || "0", 10);
    if (tries >= 4) { return; }
    img.dataset.tries = String(tries + 1);
    var base = img.getAttribute("src").split("?")[0];
    window.setTimeout(function () { img.src = base + "?try=" + (tries + 1); }, 1000 * Math.pow(2, tries));
  }

  function setLive(on) {
    live.textContent = on ? live.dataset.on : live.dataset.off;
    live.classList.toggle("live-on", on);
    live.classList.toggle("live-off", !on);
  }

  function reload() {
    htmx.ajax("GET", wall.dataset.cardsUrl, { target: "#cards", swap: "innerHTML" }).then(function () {
      trim();
      refreshCount();
    });
  }

  function beforeMessage(evt) {
    var card = parse(evt.detail.data);
    if (!card || !card.id) { evt.preventDefault(); return; }
    var existing = document.getElementById(card.id);
    var open = card.dataset.open === "1";
    if (existing) {
      evt.preventDefault();
      if (open) {
        existing.replaceWith(card);
        htmx.process(card);
      } else {
        existing.remove();
      }
      refreshCount();
      return;
    }
    if (!open) { evt.preventDefault(); return; }
    if (card.dataset.severity === "urgent" && card.classList.contains("state-new")) { playCue(); }
  }

  document.addEventListener("DOMContentLoaded", function () {
    wall = document.getElementById("wall");
    cards = document.getElementById("cards");
    live = document.getElementById("live");
    sound = document.getElementById("sound");
    cue = document.getElementById("cue");
    empty = document.getElementById("empty");
    count = document.getElementById("count");
    max = parseInt(wall.dataset.max, 10) || 60;

    cards.addEventListener("htmx:sseBeforeMessage", beforeMessage);
    cards.addEventListener("error", retryThumbnail, true);
    cards.addEventListener("htmx:sseMessage", function () { trim(); refreshCount(); });
    wall.addEventListener("htmx:sseOpen", function (evt) {
      setLive(true);
      opened += 1;
      if (opened > 1) { reload(); }
      var source = evt.detail.source;
      if (source && !source.guanjiaReset) {
        source.guanjiaReset = true;
        source.addEventListener("reset", reload);
        // The server ended the stream: the user was disabled or got another role or other
        // sites. Reload the page, which then shows the login page or the new scope.
        source.addEventListener("end", function () { window.location.reload(); });
      }
    });
    wall.addEventListener("htmx:sseError", function () { setLive(false); });
    // An acknowledged card comes back from the one-click form: keep the count right.
    cards.addEventListener("htmx:afterSwap", refreshCount);
    sound.addEventListener("click", function () {
      soundOn = !soundOn;
      sound.setAttribute("aria-pressed", soundOn ? "true" : "false");
      sound.textContent = soundOn ? sound.dataset.on : sound.dataset.off;
      if (soundOn) {
        // A click is the user gesture browsers want before they let a page play sound.
        cue.muted = true;
        var p = cue.play();
        var unmute = function () { cue.pause(); cue.muted = false; };
        if (p && p.then) { p.then(unmute, unmute); } else { unmute(); }
      }
    });
    // Every ten minutes the cards are read again: a resync that costs one request, and the
    // request that renews the session cookie of a wall screen nobody touches for days.
    window.setInterval(reload, RESYNC_MS);
    trim();
    refreshCount();
  });
})();
