// wasmflow web UI: live refresh of a run's page, times in the reader's zone.
// The pages work without it; it only adds what needs a script.
(function () {
  "use strict";
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (t) {
      var at = new Date(t.getAttribute("datetime"));
      if (isNaN(at.getTime())) return;
      t.title = t.textContent;
      // sv-SE writes `2026-12-07 14:31:05`.
      t.textContent = at.toLocaleString("sv-SE");
    });
  }
  localTimes(document);
  var live = document.querySelector("[data-live]");
  if (!live || !window.EventSource) return;
  var source = new EventSource(live.getAttribute("data-live"));
  live.setAttribute("data-state", "live");
  source.addEventListener("update", function (e) {
    var open = {};
    live.querySelectorAll("details[open]").forEach(function (d, i) { open[i] = true; });
    live.innerHTML = e.data;
    live.querySelectorAll("details").forEach(function (d, i) { if (open[i]) d.open = true; });
    localTimes(live);
  });
  function end(state) {
    source.close();
    live.setAttribute("data-state", state);
  }
  source.addEventListener("end", function () { end("ended"); });
  source.addEventListener("failure", function (e) {
    var note = document.createElement("p");
    note.className = "error";
    note.textContent = "Live updates stopped: " + e.data;
    live.parentNode.insertBefore(note, live);
    end("failed");
  });
})();
