// Private pages (docs/threat-model.md §grants): a watch link carries its grant in the URL
// fragment (#grant=…), which browsers never send to a server, a proxy or a cache. This script
// hands it to the server once (POST, same origin), which answers with an HttpOnly cookie;
// the fragment is then removed from the address bar and the page reloads with the cookie.
"use strict";
(function () {
  const message = document.getElementById("access-message");
  const hash = new URLSearchParams(window.location.hash.slice(1));
  const token = hash.get("grant");
  if (!token) return;
  history.replaceState(null, "", window.location.pathname + window.location.search);
  if (message) message.textContent = "Checking your link…";
  fetch("/access/grant", {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ token: token }).toString(),
  }).then((r) => {
    if (r.ok) {
      window.location.reload();
    } else if (message) {
      message.textContent = "This link is not valid (any more). Ask for a new one.";
    }
  }).catch(() => {
    if (message) message.textContent = "Could not check the link; try again.";
  });
})();
