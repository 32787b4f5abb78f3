// Live panels (templates/_poll.html puts data-poll on them). No eval: the CSP forbids it, so the
// "only while visible" condition lives here instead of in an htmx trigger filter.
(function () {
  "use strict";

  function isPoll(detail) {
    return detail.elt instanceof Element && detail.elt.hasAttribute("data-poll");
  }

  // A hidden tab does not poll at all.
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (isPoll(event.detail) && document.visibilityState !== "visible") {
      event.preventDefault();
    }
  });

  // Shown again: refresh at once instead of showing stale figures until the next tick.
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible" && window.htmx) {
      document.querySelectorAll("[data-poll]").forEach(function (elt) {
        window.htmx.trigger(elt, "console:visible");
      });
    }
  });
})();
