// The sign-in page: a key for a session cookie; single sign-on when configured.

const form = document.getElementById("login-form");
const input = document.getElementById("key");
const error = document.getElementById("login-error");
const button = form.querySelector("button[type=submit]");

const OIDC_ERRORS = {
  oidc_denied: "The identity provider did not sign you in.",
  oidc_expired: "The single sign-on attempt expired. Try again.",
  oidc_state: "The single sign-on answer did not match this browser's attempt. Try again.",
  oidc_failed: "Single sign-on failed: the identity provider's answer could not be verified.",
  oidc_no_role: "Your account has no Tollway role. Ask an administrator to grant one.",
  oidc_unavailable: "The identity provider cannot be reached right now. Try again, or use a key.",
};

function next() {
  const value = new URLSearchParams(location.search).get("next") || "";
  return value.startsWith("/ui") && !value.startsWith("//") ? value : "/ui";
}

function show(message) {
  error.textContent = message;
  error.hidden = !message;
  input.setAttribute("aria-invalid", message ? "true" : "false");
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = input.value.trim();
  if (!key) {
    show("Enter the master key or an admin key.");
    input.focus();
    return;
  }
  show("");
  button.disabled = true;
  button.textContent = "Signing in…";
  try {
    const response = await fetch("/ui/session", {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify({ key }),
      credentials: "same-origin",
    });
    if (response.ok) {
      input.value = "";
      location.assign(next());
      return;
    }
    let message = `Sign-in failed (${response.status}).`;
    try {
      message = (await response.json()).error.message || message;
    } catch {
      // keep the status
    }
    show(message);
    input.select();
  } catch {
    show("The gateway could not be reached. Check that it is running, then try again.");
  } finally {
    button.disabled = false;
    button.textContent = "Sign in";
  }
});

async function options() {
  const params = new URLSearchParams(location.search);
  const problem = params.get("error");
  if (problem) show(OIDC_ERRORS[problem] || "Sign-in failed.");
  try {
    const response = await fetch("/ui/sign-in-options", { credentials: "same-origin" });
    const body = await response.json();
    if (body.oidc) {
      const link = document.getElementById("sso-link");
      link.textContent = body.oidc.label;
      link.href = `/ui/oidc/login?next=${encodeURIComponent(next())}`;
      document.getElementById("sso").hidden = false;
    }
  } catch {
    // the key form works without it
  }
}

options();
