// Training job page (templates/admin/models_job.html): poll the job's JSON every
// two seconds, show its stage, epoch and elapsed time, reload once it finishes
// (the comparison and the deploy form are rendered by the server). No framework.
(function () {
  "use strict";
  var box = document.getElementById("job");
  if (!box || box.dataset.finished === "true") return;
  var url = box.dataset.jobUrl;
  var elapsedEl = document.getElementById("job-elapsed");
  var seconds = parseFloat(elapsedEl.dataset.seconds) || 0;
  var tickedAt = Date.now();

  function clock(total) {
    total = Math.max(0, Math.floor(total));
    var m = Math.floor(total / 60), s = total % 60;
    return (m < 10 ? "0" : "") + m + ":" + (s < 10 ? "0" : "") + s;
  }
  function set(id, text) {
    var el = document.getElementById(id);
    if (el) el.textContent = text;
  }
  function tick() {
    elapsedEl.textContent = clock(seconds + (Date.now() - tickedAt) / 1000);
  }
  function show(job) {
    seconds = job.elapsed_seconds;
    tickedAt = Date.now();
    tick();
    set("job-status", job.status_label);
    set("job-detail", job.stage_detail || "");
    var bar = document.getElementById("job-progress");
    if (bar && job.epochs) {
      bar.max = job.epochs;
      bar.value = job.epoch || 0;
      set("job-epochs", "第 " + (job.epoch || 0) + "/" + job.epochs + " 轮");
    }
    set("job-log", (job.log_tail || []).join("\n"));
  }
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (job) {
        show(job);
        if (job.finished) {
          window.location.reload();
        } else {
          window.setTimeout(poll, 2000);
        }
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }
  window.setInterval(tick, 1000);
  window.setTimeout(poll, 2000);
})();
