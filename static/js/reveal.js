// A revealed card number ([data-reveal-seconds], console.cards.reveal_routes) is blanked after
// its time, whether it arrived with a full page or an htmx swap. A second look is a new reveal.
(function () {
  "use strict";

  function arm(root) {
    (root.querySelectorAll ? root : document).querySelectorAll("[data-reveal-seconds]")
      .forEach(function (elt) {
        if (elt.dataset.revealArmed) { return; }
        elt.dataset.revealArmed = "true";
        var seconds = parseInt(elt.dataset.revealSeconds, 10) || 30;
        window.setTimeout(function () {
          elt.textContent = (elt.dataset.masked || "") + " (hidden again; reveal anew to see it)";
          elt.removeAttribute("data-reveal-seconds");
          elt.setAttribute("data-testid", "reveal-expired");
        }, seconds * 1000);
      });
  }

  // Refusals (400, 409, 423, 429) carry a message for the reveal panel: show it there.
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "card-data" &&
        event.detail.xhr.status >= 400 && event.detail.xhr.status < 500) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
  document.addEventListener("htmx:afterSettle", function (event) { arm(event.detail.elt); });
  document.addEventListener("DOMContentLoaded", function () { arm(document); });
})();
