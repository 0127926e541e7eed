// The three APIs as the browser reaches them, with the key kept in this tab's session only.

import { t } from "./i18n.js";

const KEY = "twinaid.board.key";
let config = null;

/** A refusal or failure, carrying the API's problem+json (RFC 9457) when there is one. */
export class ApiError extends Error {
  constructor(status, problem, service) {
    super(problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.service = service;
    this.invalid = Array.isArray(problem.invalid_params) ? problem.invalid_params : [];
  }
}

export async function loadConfig() {
  const response = await fetch("config.json", { cache: "no-store" });
  if (!response.ok) throw new Error(`config.json: HTTP ${response.status}`);
  config = await response.json();
  return config;
}

export function urlOf(service) {
  return config && config[service] ? config[service] : null;
}

export const session = {
  get key() {
    return sessionStorage.getItem(KEY);
  },
  set key(value) {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  },
  who: null, // {organisation, roles, key_id} once signed in
  has(...roles) {
    return !!this.who && roles.some((r) => this.who.roles.includes(r));
  },
};

const listeners = new Set();
/** Called with the error when a key stops being accepted (401 from shipments). */
export function onSignedOut(listener) {
  listeners.add(listener);
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params || {})) {
    if (value === null || value === undefined || value === "") continue;
    for (const v of Array.isArray(value) ? value : [value]) search.append(name, v);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

async function problemOf(response) {
  const type = response.headers.get("content-type") || "";
  if (type.includes("json")) {
    try {
      return await response.json();
    } catch {
      /* fall through */
    }
  }
  return { title: `HTTP ${response.status} ${response.statusText}`.trim(), status: response.status };
}

/**
 * A JSON request to one service. Throws ApiError: with the problem for a refusal, status 0
 * when the service cannot be reached.
 */
export async function api(service, path, options = {}) {
  const base = urlOf(service);
  if (!base) {
    throw new ApiError(0, { title: t("api.not_configured", { service }) }, service);
  }
  const key = options.key ?? session.key;
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  if (key) headers.Authorization = `Bearer ${key}`;
  let body;
  if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.body);
  }
  let response;
  try {
    response = await fetch(base + path, {
      method: options.method || "GET",
      headers,
      body,
      cache: "no-store",
      signal: options.signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, { title: t("api.unreachable", { service }), detail: String(error.message || error) }, service);
  }
  if (!response.ok) {
    const error = new ApiError(response.status, await problemOf(response), service);
    if (response.status === 401 && service === "shipments" && !options.key) {
      for (const listener of listeners) listener(error);
    }
    throw error;
  }
  if (response.status === 204) return null;
  return response.json();
}

/** Every item of a paged list (`items`, `next_cursor`), up to `max` items. */
export async function all(service, path, params = {}, max = 1000) {
  const items = [];
  let cursor = null;
  do {
    const page = await api(service, path + query({ ...params, limit: 200, cursor }));
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}

/** Checks a key against shipments and says whose it is. */
export async function whoami(key) {
  return api("shipments", "/board/whoami", { key });
}

// -- organisation names, from the registry (ids when it cannot be read) ----------------------

const names = new Map();
let directory = null;

export function loadDirectory() {
  directory ??= all("registry", "/v1/organisations")
    .then((items) => {
      for (const o of items) names.set(o.organisation_id, o);
      return items;
    })
    .catch(() => {
      directory = null;
      return [];
    });
  return directory;
}

export function nameOf(id) {
  if (!id) return "—";
  return names.get(id)?.name || id;
}

export function organisation(id) {
  return names.get(id) || null;
}
