// The shell: who is signed in, the navigation for their role, sign-out, and the page
// the address names (its module draws it into <main>).

import { currentSession, setCsrf, signOut } from "./api.js";
import { clear, errorBox, progress } from "./dom.js";

const RANK = { viewer: 0, operator: 1, admin: 2 };
const PAGES = {
  overview: () => import("./pages/overview.js"),
  keys: () => import("./pages/keys.js"),
  projects: () => import("./pages/projects.js"),
  spend: () => import("./pages/spend.js"),
  requests: () => import("./pages/requests.js"),
  providers: () => import("./pages/providers.js"),
  audit: () => import("./pages/audit.js"),
};

function pageName() {
  const name = location.pathname.replace(/^\/ui\/?/, "").split("/")[0];
  return name in PAGES ? name : "overview";
}

function context(session) {
  const params = new URLSearchParams(location.search);
  return {
    session,
    role: session.role,
    // Whether the session's role may do what needs `role` (the API checks it anyway).
    can: (role) => RANK[session.role] >= RANK[role],
    params,
    // Keep a page's filters in the address, so reload, back and links keep them.
    setParams(values) {
      for (const [name, value] of Object.entries(values)) {
        if (value === undefined || value === null || value === "") params.delete(name);
        else params.set(name, String(value));
      }
      const search = params.toString();
      history.replaceState(null, "", location.pathname + (search ? `?${search}` : ""));
    },
    publicUrl: (session.public_url || location.origin).replace(/\/+$/, ""),
  };
}

function navigation(ctx, page) {
  for (const link of document.querySelectorAll("#nav a[data-page]")) {
    const needed = link.dataset.role;
    if (needed && !ctx.can(needed)) link.parentElement.remove();
    else if (link.dataset.page === page) link.setAttribute("aria-current", "page");
  }
  document.getElementById("who").textContent = `${ctx.session.actor} · ${ctx.session.role}`;
  const button = document.getElementById("sign-out");
  button.addEventListener("click", async () => {
    button.disabled = true;
    button.textContent = "Signing out…";
    try {
      await signOut();
    } finally {
      location.assign("/ui/login");
    }
  });
}

async function start() {
  const main = document.getElementById("main");
  let session;
  try {
    session = await currentSession();
  } catch (error) {
    clear(main).append(errorBox(error, () => location.reload()));
    return;
  }
  if (!session) {
    location.replace(`/ui/login?next=${encodeURIComponent(location.pathname + location.search)}`);
    return;
  }
  setCsrf(session.csrf_token);
  const ctx = context(session);
  const page = pageName();
  navigation(ctx, page);
  clear(main).append(progress());
  try {
    const module = await PAGES[page]();
    clear(main);
    await module.render(main, ctx);
    document.title = `${page[0].toUpperCase()}${page.slice(1)} · Tollway`;
  } catch (error) {
    if (error && error.redirected) return;
    clear(main).append(errorBox(error, () => location.reload()));
  }
}

start();
