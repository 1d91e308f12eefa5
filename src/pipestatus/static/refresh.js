// Live refresh without a full reload: every data-refresh seconds, fetch this page again
// and swap in its #live element. Pages read fine without it (they are server-rendered).
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !live.dataset.refresh) { return; }
  var seconds = Math.max(2, parseInt(live.dataset.refresh, 10) || 10);
  function tick() {
    fetch(window.location.href, { headers: { "Accept": "text/html" }, cache: "no-store" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (text) {
        if (text === null) { return; }
        var fresh = new DOMParser().parseFromString(text, "text/html").getElementById("live");
        if (fresh) { live.innerHTML = fresh.innerHTML; live.dataset.refreshed = String(Date.now()); }
      })
      .catch(function () { /* next tick tries again */ })
      .finally(function () { window.setTimeout(tick, seconds * 1000); });
  }
  window.setTimeout(tick, seconds * 1000);
})();
