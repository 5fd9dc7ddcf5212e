// The management API from the page: the session cookie goes along by itself (same
// origin); every write also sends the session's CSRF token. Errors carry the API's
// message and the field it names.

let csrfToken = null;

export class ApiError extends Error {
  constructor(status, message, param, code) {
    super(message);
    this.status = status;
    this.param = param;
    this.code = code;
  }
}

export function setCsrf(token) {
  csrfToken = token;
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params || {})) {
    if (value === undefined || value === null || value === "") continue;
    search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

function toSignIn() {
  const next = location.pathname + location.search;
  location.assign(`/ui/login?next=${encodeURIComponent(next)}`);
  const error = new ApiError(401, "Your session ended: signing in again…");
  error.redirected = true;
  return error;
}

async function problem(response) {
  let message = `The gateway answered ${response.status} ${response.statusText}.`;
  let param = null;
  let code = null;
  try {
    const body = await response.json();
    const detail = body.error || {};
    message = detail.message || message;
    param = detail.param || null;
    code = detail.code || null;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, message, param, code);
}

export async function request(method, url, body) {
  const headers = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET" && csrfToken) headers["x-csrf-token"] = csrfToken;
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "The gateway could not be reached. Check that it is running, then try again.");
  }
  if (response.status === 401 && url.startsWith("/api/")) throw toSignIn();
  if (!response.ok) throw await problem(response);
  if (response.status === 204) return null;
  return response.json();
}

export const api = {
  get: (path, params) => request("GET", `/api/v1${path}${query(params)}`),
  post: (path, body) => request("POST", `/api/v1${path}`, body ?? {}),
  patch: (path, body) => request("PATCH", `/api/v1${path}`, body),
  delete: (path) => request("DELETE", `/api/v1${path}`),
};

export async function currentSession() {
  try {
    return await request("GET", "/ui/session");
  } catch (error) {
    if (error.status === 401) return null;
    throw error;
  }
}

export async function signOut() {
  await request("DELETE", "/ui/session");
}
