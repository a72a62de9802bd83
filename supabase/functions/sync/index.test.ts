// node:assert is built into Deno: no registry needed to run the tests offline.
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { type Deps, handler } from "./handler.ts";

const URL_BASE = "http://functions.test";

interface Seen {
  url: string;
  init: RequestInit | undefined;
}

function fakeFetch(respond: () => Response | Promise<Response>, seen: Seen[]): typeof fetch {
  return ((input: string | URL | Request, init?: RequestInit) => {
    seen.push({ url: String(input), init });
    return Promise.resolve(respond());
  }) as typeof fetch;
}

function deps(fetchImpl: typeof fetch): Deps {
  let t = 1000;
  return { fetch: fetchImpl, supabaseUrl: "http://api.test", now: () => (t += 12.5) };
}

Deno.test("GET /sync/health calls the health RPC with the caller's credentials", async () => {
  const seen: Seen[] = [];
  const f = fakeFetch(() => Response.json({ ok: true, server_time: "2026-11-22T12:00:00+00:00" }), seen);
  const req = new Request(`${URL_BASE}/sync/health`, {
    headers: { authorization: "Bearer abc", apikey: "key-1", "x-other": "not forwarded" },
  });
  const resp = await handler(req, deps(f));
  assertEquals(resp.status, 200);
  assertEquals(await resp.json(), {
    ok: true,
    database: true,
    server_time: "2026-11-22T12:00:00+00:00",
    schema_version: null,
    latency_ms: 12.5,
  });
  assertEquals(seen.length, 1);
  assertEquals(seen[0].url, "http://api.test/rest/v1/rpc/health");
  assertEquals(seen[0].init?.method, "POST");
  const sent = new Headers(seen[0].init?.headers);
  assertEquals(sent.get("authorization"), "Bearer abc");
  assertEquals(sent.get("apikey"), "key-1");
  assertEquals(sent.get("x-other"), null);
});

Deno.test("GET /sync/health reports database false when the RPC fails", async () => {
  const f = fakeFetch(() => Response.json({ code: "PGRST301", message: "JWT expired" }, { status: 401 }), []);
  const resp = await handler(new Request(`${URL_BASE}/sync/health`), deps(f));
  assertEquals(resp.status, 503);
  const body = await resp.json();
  assertEquals(body.ok, false);
  assertEquals(body.database, false);
  assertEquals(body.server_time, null);
});

Deno.test("GET /sync/health reports database false when the API is unreachable", async () => {
  const f = (() => Promise.reject(new TypeError("connection refused"))) as typeof fetch;
  const resp = await handler(new Request(`${URL_BASE}/sync/health`), deps(f));
  assertEquals(resp.status, 503);
  assertEquals((await resp.json()).database, false);
});

Deno.test("POST /sync/push forwards device and events to sync_push with the caller's JWT", async () => {
  const seen: Seen[] = [];
  const answer = { results: [{ event_id: "e1", status: "applied", version: 1 }], cursor: 7 };
  const f = fakeFetch(() => Response.json(answer), seen);
  const req = new Request(`${URL_BASE}/sync/push`, {
    method: "POST",
    headers: { authorization: "Bearer user-jwt", apikey: "anon" },
    body: JSON.stringify({ device_id: "d1", events: [{ event_id: "e1" }] }),
  });
  const resp = await handler(req, deps(f));
  assertEquals(resp.status, 200);
  assertEquals(await resp.json(), answer);
  assertEquals(seen[0].url, "http://api.test/rest/v1/rpc/sync_push");
  assertEquals(JSON.parse(String(seen[0].init?.body)), { p_device_id: "d1", p_events: [{ event_id: "e1" }] });
  assertEquals(new Headers(seen[0].init?.headers).get("authorization"), "Bearer user-jwt");
});

Deno.test("RPC errors pass through with their status and body", async () => {
  const err = { code: "PT402", message: "licence expired", details: "licence_expired", hint: null };
  const f = fakeFetch(() => Response.json(err, { status: 402 }), []);
  const req = new Request(`${URL_BASE}/sync/push`, { method: "POST", body: '{"device_id": "d", "events": []}' });
  const resp = await handler(req, deps(f));
  assertEquals(resp.status, 402);
  assertEquals(await resp.json(), err);
});

Deno.test("POST /sync/push with a body that is not JSON is a 400 without a database call", async () => {
  const seen: Seen[] = [];
  const f = fakeFetch(() => Response.json({}), seen);
  const resp = await handler(new Request(`${URL_BASE}/sync/push`, { method: "POST", body: "not json" }), deps(f));
  assertEquals(resp.status, 400);
  assertEquals((await resp.json()).details, "invalid_payload");
  assertEquals(seen.length, 0);
});

Deno.test("GET /sync/pull maps the query to sync_pull's arguments", async () => {
  const seen: Seen[] = [];
  const f = fakeFetch(() => Response.json({ changes: [], cursor: 5, has_more: false }), seen);
  const resp = await handler(new Request(`${URL_BASE}/sync/pull?device_id=d9&cursor=5&limit=50`), deps(f));
  assertEquals(resp.status, 200);
  assertEquals(JSON.parse(String(seen[0].init?.body)), { p_device_id: "d9", p_cursor: 5, p_limit: 50 });
  const bad = await handler(new Request(`${URL_BASE}/sync/pull?cursor=abc`), deps(f));
  assertEquals(bad.status, 400);
});

Deno.test("other paths answer 404 JSON without calling the database", async () => {
  const seen: Seen[] = [];
  const f = fakeFetch(() => Response.json({ ok: true }), seen);
  const resp = await handler(new Request(`${URL_BASE}/sync/elsewhere`), deps(f));
  assertEquals(resp.status, 404);
  assertEquals(resp.headers.get("content-type"), "application/json; charset=utf-8");
  assertEquals((await resp.json()).error, "not_found");
  assertEquals(seen.length, 0);
});

Deno.test("push and pull forward the device's x-device-secret header, so the RPC can check the device", async () => {
  const seen: Seen[] = [];
  const f = fakeFetch(() => Response.json({ results: [], changes: [], cursor: 0 }), seen);
  const headers = { authorization: "Bearer user-jwt", apikey: "anon", "x-device-secret": "s3cr3t" };
  await handler(new Request(`${URL_BASE}/sync/push`, {
    method: "POST",
    headers,
    body: JSON.stringify({ device_id: "d1", events: [] }),
  }), deps(f));
  await handler(new Request(`${URL_BASE}/sync/pull?device_id=d1&cursor=0`, { headers }), deps(f));
  assertEquals(seen.length, 2);
  for (const s of seen) assertEquals(new Headers(s.init?.headers).get("x-device-secret"), "s3cr3t");
  // Without one, none is invented (the RPC answers PT403 device_credential_invalid).
  await handler(new Request(`${URL_BASE}/sync/pull?device_id=d1&cursor=0`, { headers: { apikey: "anon" } }), deps(f));
  assertEquals(new Headers(seen[2].init?.headers).get("x-device-secret"), null);
});
