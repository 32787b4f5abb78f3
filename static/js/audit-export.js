// The audit export form ([data-export-stream], templates/audit/_partials/_export.html) downloads
// with fetch and a stream reader, showing bytes received and an estimate of the rows done
// (X-Audit-Export-Events gives the count up front; the zip is streamed, so its length is not
// known), then saves the zip. Without JS, or if the answer is not a zip (a refusal, a step-up
// page), the plain form submission does the job.
(function () {
  "use strict";

  // Deflated bytes per exported event, roughly: JSON Lines alone, CSV adds a second copy.
  var BYTES_PER_ROW = { jsonl: 120, csv: 220 };

  function filenameOf(response) {
    var match = /filename=([^;]+)/.exec(response.headers.get("Content-Disposition") || "");
    return match ? match[1].replace(/"/g, "") : "audit-export.zip";
  }

  function save(blob, name) {
    var url = URL.createObjectURL(blob);
    var link = document.createElement("a");
    link.href = url;
    link.download = name;
    document.body.appendChild(link);
    link.click();
    link.remove();
    window.setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
  }

  function arm(form) {
    var progress = form.parentNode.querySelector("[data-export-progress]");
    form.addEventListener("submit", function (event) {
      if (!window.fetch || !window.ReadableStream) { return; }
      event.preventDefault();
      var format = (form.elements.format && form.elements.format.value) || "jsonl";
      var show = function (text) { progress.hidden = false; progress.textContent = text; };
      show("Starting the export…");
      fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok || response.headers.get("Content-Type") !== "application/zip" ||
              !response.body) {
            progress.hidden = true;
            form.submit();  // the page answers refusals and step-up itself
            return null;
          }
          var rows = parseInt(response.headers.get("X-Audit-Export-Events"), 10) || 0;
          var estimate = rows * (BYTES_PER_ROW[format] || BYTES_PER_ROW.jsonl);
          var reader = response.body.getReader();
          var parts = [];
          var received = 0;
          var pump = function () {
            return reader.read().then(function (step) {
              if (step.done) { return; }
              parts.push(step.value);
              received += step.value.length;
              var percent = estimate ? Math.min(99, Math.floor(100 * received / estimate)) : 0;
              show("Downloading: " + received.toLocaleString() + " bytes, about " + percent +
                   "% of " + rows.toLocaleString() + " events");
              return pump();
            });
          };
          return pump().then(function () {
            save(new Blob(parts, { type: "application/zip" }), filenameOf(response));
            show("Downloaded " + received.toLocaleString() + " bytes, " +
                 rows.toLocaleString() + " events (100%).");
            progress.setAttribute("data-export-done", "true");
          });
        })
        .catch(function () { show("The download failed; try again."); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-export-stream]").forEach(arm);
  });
})();
