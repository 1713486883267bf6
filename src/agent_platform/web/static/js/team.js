// Copy buttons next to a value shown once (an invitation link, a new API key).
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) {
    return;
  }
  try {
    await navigator.clipboard.writeText(button.dataset.copy);
    button.textContent = button.dataset.copied;
  } catch {
    // No clipboard access (an insecure origin, a refusal): the value stays on the page to select.
  }
});
