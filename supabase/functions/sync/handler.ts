// The sync edge function's request handler, kept apart from Deno.serve so tests can call it with
// injected dependencies. Routes (the path the edge runtime passes starts with the function name):
//   GET /sync/health  -> {ok, database, server_time, latency_ms}
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
  latency_ms: number;
}

const JSON_HEADERS = { "content-type": "application/json; charset=utf-8" };

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: JSON_HEADERS });
}

/** Calls the `health` RPC with the caller's own credentials and reports what it saw. */
async function health(req: Request, deps: Deps): Promise<Response> {
  const now = deps.now ?? (() => performance.now());
  const headers: Record<string, string> = { "content-type": "application/json" };
  for (const name of ["authorization", "apikey"]) {
    const value = req.headers.get(name);
    if (value) headers[name] = value;
  }
  const started = now();
  let database = false;
  let serverTime: string | null = null;
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
    } else {
      await resp.body?.cancel();
    }
  } catch {
    database = false;
  }
  const latency = Math.round((now() - started) * 100) / 100;
  const body: Health = { ok: database, database, server_time: serverTime, latency_ms: latency };
  return json(database ? 200 : 503, body);
}

export async function handler(req: Request, deps: Deps): Promise<Response> {
  const path = new URL(req.url).pathname.replace(/\/+$/, "");
  if (path === "/sync/health") {
    if (req.method !== "GET") return json(405, { error: "method_not_allowed", message: "use GET" });
    return await health(req, deps);
  }
  return json(404, { error: "not_found", message: `no route for ${req.method} ${path}` });
}
