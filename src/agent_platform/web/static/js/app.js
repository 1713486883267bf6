// Loaded by every page (never inline: the Content-Security-Policy allows no inline script).
// HTMX requests carry the session's CSRF token in a header, as the server accepts it there.
document.addEventListener("htmx:configRequest", (event) => {
  const token = document.querySelector('meta[name="csrf-token"]');
  if (token) {
    event.detail.headers["X-CSRF-Token"] = token.content;
  }
});
