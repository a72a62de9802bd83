// The sync edge function's request handler, kept apart from Deno.serve so tests can call it with
// injected dependencies. The HTTP contract of the Supabase plan, as a thin layer over the RPCs,
// called with the caller's own JWT (no logic here that SQL already has):
//   GET  /sync/health                                 -> {ok, database, server_time, schema_version, latency_ms}
//   POST /sync/push   {device_id, events}             -> sync_push's answer
//   GET  /sync/pull?device_id=&cursor=&limit=         -> sync_pull's answer
// The device's secret travels in the x-device-secret header, forwarded as is (docs/protocol.md).
// RPC errors pass through unchanged (PostgREST's status and {code, message, details, hint}).
// Anything else is a 404 JSON body.

export interface Deps {
  /** fetch used to reach the database API; tests inject a fake. */
  fetch: typeof fetch;
  /** The project's API URL (SUPABASE_URL in the edge runtime). */
  supabaseUrl: string;
  /** Milliseconds clock; tests may inject a fixed one. */
  now?: () => number;
}

export interface Health {
  ok: boolean;
  database: boolean;
  server_time: string | null;
  schema_version: number | null;
  latency_ms: number;
}

const JSON_HEADERS = { "content-type": "application/json; charset=utf-8" };

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: JSON_HEADERS });
}

/** The caller's credentials, forwarded to the RPC so RLS sees the same user, and the device's
 * secret (x-device-secret), without which sync_push and sync_pull refuse to act as the device. */
function callerHeaders(req: Request): Record<string, string> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  for (const name of ["authorization", "apikey", "x-device-secret"]) {
    const value = req.headers.get(name);
    if (value) headers[name] = value;
  }
  return headers;
}

/** POST /rest/v1/rpc/<fn> and hand its status and body back unchanged. */
async function rpc(req: Request, deps: Deps, fn: string, args: Record<string, unknown>): Promise<Response> {
  let resp: Response;
  try {
    resp = await deps.fetch(`${deps.supabaseUrl}/rest/v1/rpc/${fn}`, {
      method: "POST",
      headers: callerHeaders(req),
      body: JSON.stringify(args),
    });
  } catch (err) {
    return json(503, { code: "UNAVAILABLE", message: `database API unreachable: ${err}`, details: null, hint: null });
  }
  return new Response(await resp.text(), { status: resp.status, headers: JSON_HEADERS });
}

function badRequest(message: string): Response {
  return json(400, { code: "PT400", message, details: "invalid_payload", hint: null });
}

async function push(req: Request, deps: Deps): Promise<Response> {
  let body: unknown;
  try {
    body = await req.json();
  } catch {
    return badRequest("the body must be JSON: {device_id, events}");
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return badRequest("the body must be a JSON object: {device_id, events}");
  }
  const { device_id, events } = body as Record<string, unknown>;
  return await rpc(req, deps, "sync_push", { p_device_id: device_id ?? null, p_events: events ?? null });
}

async function pull(req: Request, deps: Deps): Promise<Response> {
  const q = new URL(req.url).searchParams;
  const cursor = Number(q.get("cursor") ?? "0");
  const limit = Number(q.get("limit") ?? "500");
  if (!Number.isSafeInteger(cursor) || !Number.isSafeInteger(limit)) {
    return badRequest("cursor and limit must be integers");
  }
  return await rpc(req, deps, "sync_pull", { p_device_id: q.get("device_id"), p_cursor: cursor, p_limit: limit });
}

/** Calls the `health` RPC with the caller's own credentials and reports what it saw. */
async function health(req: Request, deps: Deps): Promise<Response> {
  const now = deps.now ?? (() => performance.now());
  const headers = callerHeaders(req);
  const started = now();
  let database = false;
  let serverTime: string | null = null;
  let schemaVersion: number | null = null;
  try {
    const resp = await deps.fetch(`${deps.supabaseUrl}/rest/v1/rpc/health`, {
      method: "POST",
      headers,
      body: "{}",
    });
    if (resp.ok) {
      const body = await resp.json();
      database = body?.ok === true;
      serverTime = typeof body?.server_time === "string" ? body.server_time : null;
      schemaVersion = typeof body?.schema_version === "number" ? body.schema_version : null;
    } else {
      await resp.body?.cancel();
    }
  } catch {
    database = false;
  }
  const latency = Math.round((now() - started) * 100) / 100;
  const body: Health = {
    ok: database,
    database,
    server_time: serverTime,
    schema_version: schemaVersion,
    latency_ms: latency,
  };
  return json(database ? 200 : 503, body);
}

export async function handler(req: Request, deps: Deps): Promise<Response> {
  const path = new URL(req.url).pathname.replace(/\/+$/, "");
  if (path === "/sync/health") {
    if (req.method !== "GET") return json(405, { error: "method_not_allowed", message: "use GET" });
    return await health(req, deps);
  }
  if (path === "/sync/push") {
    if (req.method !== "POST") return json(405, { error: "method_not_allowed", message: "use POST" });
    return await push(req, deps);
  }
  if (path === "/sync/pull") {
    if (req.method !== "GET") return json(405, { error: "method_not_allowed", message: "use GET" });
    return await pull(req, deps);
  }
  return json(404, { error: "not_found", message: `no route for ${req.method} ${path}` });
}
