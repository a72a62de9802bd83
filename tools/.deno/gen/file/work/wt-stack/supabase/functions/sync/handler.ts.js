// The sync edge function's request handler, kept apart from Deno.serve so tests can call it with
// injected dependencies. Routes (the path the edge runtime passes starts with the function name):
//   GET /sync/health  -> {ok, database, server_time, latency_ms}
// Anything else is a 404 JSON body.
const JSON_HEADERS = {
  "content-type": "application/json; charset=utf-8"
};
function json(status, body) {
  return new Response(JSON.stringify(body), {
    status,
    headers: JSON_HEADERS
  });
}
/** Calls the `health` RPC with the caller's own credentials and reports what it saw. */ async function health(req, deps) {
  const now = deps.now ?? (()=>performance.now());
  const headers = {
    "content-type": "application/json"
  };
  for (const name of [
    "authorization",
    "apikey"
  ]){
    const value = req.headers.get(name);
    if (value) headers[name] = value;
  }
  const started = now();
  let database = false;
  let serverTime = null;
  try {
    const resp = await deps.fetch(`${deps.supabaseUrl}/rest/v1/rpc/health`, {
      method: "POST",
      headers,
      body: "{}"
    });
    if (resp.ok) {
      const body = await resp.json();
      database = body?.ok === true;
      serverTime = typeof body?.server_time === "string" ? body.server_time : null;
    } else {
      await resp.body?.cancel();
    }
  } catch  {
    database = false;
  }
  const latency = Math.round((now() - started) * 100) / 100;
  const body = {
    ok: database,
    database,
    server_time: serverTime,
    latency_ms: latency
  };
  return json(database ? 200 : 503, body);
}
export async function handler(req, deps) {
  const path = new URL(req.url).pathname.replace(/\/+$/, "");
  if (path === "/sync/health") {
    if (req.method !== "GET") return json(405, {
      error: "method_not_allowed",
      message: "use GET"
    });
    return await health(req, deps);
  }
  return json(404, {
    error: "not_found",
    message: `no route for ${req.method} ${path}`
  });
}
//# sourceMappingURL=data:application/json;base64,eyJ2ZXJzaW9uIjozLCJzb3VyY2VzIjpbImZpbGU6Ly8vd29yay93dC1zdGFjay9zdXBhYmFzZS9mdW5jdGlvbnMvc3luYy9oYW5kbGVyLnRzIl0sInNvdXJjZXNDb250ZW50IjpbIi8vIFRoZSBzeW5jIGVkZ2UgZnVuY3Rpb24ncyByZXF1ZXN0IGhhbmRsZXIsIGtlcHQgYXBhcnQgZnJvbSBEZW5vLnNlcnZlIHNvIHRlc3RzIGNhbiBjYWxsIGl0IHdpdGhcbi8vIGluamVjdGVkIGRlcGVuZGVuY2llcy4gUm91dGVzICh0aGUgcGF0aCB0aGUgZWRnZSBydW50aW1lIHBhc3NlcyBzdGFydHMgd2l0aCB0aGUgZnVuY3Rpb24gbmFtZSk6XG4vLyAgIEdFVCAvc3luYy9oZWFsdGggIC0+IHtvaywgZGF0YWJhc2UsIHNlcnZlcl90aW1lLCBsYXRlbmN5X21zfVxuLy8gQW55dGhpbmcgZWxzZSBpcyBhIDQwNCBKU09OIGJvZHkuXG5cbmV4cG9ydCBpbnRlcmZhY2UgRGVwcyB7XG4gIC8qKiBmZXRjaCB1c2VkIHRvIHJlYWNoIHRoZSBkYXRhYmFzZSBBUEk7IHRlc3RzIGluamVjdCBhIGZha2UuICovXG4gIGZldGNoOiB0eXBlb2YgZmV0Y2g7XG4gIC8qKiBUaGUgcHJvamVjdCdzIEFQSSBVUkwgKFNVUEFCQVNFX1VSTCBpbiB0aGUgZWRnZSBydW50aW1lKS4gKi9cbiAgc3VwYWJhc2VVcmw6IHN0cmluZztcbiAgLyoqIE1pbGxpc2Vjb25kcyBjbG9jazsgdGVzdHMgbWF5IGluamVjdCBhIGZpeGVkIG9uZS4gKi9cbiAgbm93PzogKCkgPT4gbnVtYmVyO1xufVxuXG5leHBvcnQgaW50ZXJmYWNlIEhlYWx0aCB7XG4gIG9rOiBib29sZWFuO1xuICBkYXRhYmFzZTogYm9vbGVhbjtcbiAgc2VydmVyX3RpbWU6IHN0cmluZyB8IG51bGw7XG4gIGxhdGVuY3lfbXM6IG51bWJlcjtcbn1cblxuY29uc3QgSlNPTl9IRUFERVJTID0geyBcImNvbnRlbnQtdHlwZVwiOiBcImFwcGxpY2F0aW9uL2pzb247IGNoYXJzZXQ9dXRmLThcIiB9O1xuXG5mdW5jdGlvbiBqc29uKHN0YXR1czogbnVtYmVyLCBib2R5OiB1bmtub3duKTogUmVzcG9uc2Uge1xuICByZXR1cm4gbmV3IFJlc3BvbnNlKEpTT04uc3RyaW5naWZ5KGJvZHkpLCB7IHN0YXR1cywgaGVhZGVyczogSlNPTl9IRUFERVJTIH0pO1xufVxuXG4vKiogQ2FsbHMgdGhlIGBoZWFsdGhgIFJQQyB3aXRoIHRoZSBjYWxsZXIncyBvd24gY3JlZGVudGlhbHMgYW5kIHJlcG9ydHMgd2hhdCBpdCBzYXcuICovXG5hc3luYyBmdW5jdGlvbiBoZWFsdGgocmVxOiBSZXF1ZXN0LCBkZXBzOiBEZXBzKTogUHJvbWlzZTxSZXNwb25zZT4ge1xuICBjb25zdCBub3cgPSBkZXBzLm5vdyA/PyAoKCkgPT4gcGVyZm9ybWFuY2Uubm93KCkpO1xuICBjb25zdCBoZWFkZXJzOiBSZWNvcmQ8c3RyaW5nLCBzdHJpbmc+ID0geyBcImNvbnRlbnQtdHlwZVwiOiBcImFwcGxpY2F0aW9uL2pzb25cIiB9O1xuICBmb3IgKGNvbnN0IG5hbWUgb2YgW1wiYXV0aG9yaXphdGlvblwiLCBcImFwaWtleVwiXSkge1xuICAgIGNvbnN0IHZhbHVlID0gcmVxLmhlYWRlcnMuZ2V0KG5hbWUpO1xuICAgIGlmICh2YWx1ZSkgaGVhZGVyc1tuYW1lXSA9IHZhbHVlO1xuICB9XG4gIGNvbnN0IHN0YXJ0ZWQgPSBub3coKTtcbiAgbGV0IGRhdGFiYXNlID0gZmFsc2U7XG4gIGxldCBzZXJ2ZXJUaW1lOiBzdHJpbmcgfCBudWxsID0gbnVsbDtcbiAgdHJ5IHtcbiAgICBjb25zdCByZXNwID0gYXdhaXQgZGVwcy5mZXRjaChgJHtkZXBzLnN1cGFiYXNlVXJsfS9yZXN0L3YxL3JwYy9oZWFsdGhgLCB7XG4gICAgICBtZXRob2Q6IFwiUE9TVFwiLFxuICAgICAgaGVhZGVycyxcbiAgICAgIGJvZHk6IFwie31cIixcbiAgICB9KTtcbiAgICBpZiAocmVzcC5vaykge1xuICAgICAgY29uc3QgYm9keSA9IGF3YWl0IHJlc3AuanNvbigpO1xuICAgICAgZGF0YWJhc2UgPSBib2R5Py5vayA9PT0gdHJ1ZTtcbiAgICAgIHNlcnZlclRpbWUgPSB0eXBlb2YgYm9keT8uc2VydmVyX3RpbWUgPT09IFwic3RyaW5nXCIgPyBib2R5LnNlcnZlcl90aW1lIDogbnVsbDtcbiAgICB9IGVsc2Uge1xuICAgICAgYXdhaXQgcmVzcC5ib2R5Py5jYW5jZWwoKTtcbiAgICB9XG4gIH0gY2F0Y2gge1xuICAgIGRhdGFiYXNlID0gZmFsc2U7XG4gIH1cbiAgY29uc3QgbGF0ZW5jeSA9IE1hdGgucm91bmQoKG5vdygpIC0gc3RhcnRlZCkgKiAxMDApIC8gMTAwO1xuICBjb25zdCBib2R5OiBIZWFsdGggPSB7IG9rOiBkYXRhYmFzZSwgZGF0YWJhc2UsIHNlcnZlcl90aW1lOiBzZXJ2ZXJUaW1lLCBsYXRlbmN5X21zOiBsYXRlbmN5IH07XG4gIHJldHVybiBqc29uKGRhdGFiYXNlID8gMjAwIDogNTAzLCBib2R5KTtcbn1cblxuZXhwb3J0IGFzeW5jIGZ1bmN0aW9uIGhhbmRsZXIocmVxOiBSZXF1ZXN0LCBkZXBzOiBEZXBzKTogUHJvbWlzZTxSZXNwb25zZT4ge1xuICBjb25zdCBwYXRoID0gbmV3IFVSTChyZXEudXJsKS5wYXRobmFtZS5yZXBsYWNlKC9cXC8rJC8sIFwiXCIpO1xuICBpZiAocGF0aCA9PT0gXCIvc3luYy9oZWFsdGhcIikge1xuICAgIGlmIChyZXEubWV0aG9kICE9PSBcIkdFVFwiKSByZXR1cm4ganNvbig0MDUsIHsgZXJyb3I6IFwibWV0aG9kX25vdF9hbGxvd2VkXCIsIG1lc3NhZ2U6IFwidXNlIEdFVFwiIH0pO1xuICAgIHJldHVybiBhd2FpdCBoZWFsdGgocmVxLCBkZXBzKTtcbiAgfVxuICByZXR1cm4ganNvbig0MDQsIHsgZXJyb3I6IFwibm90X2ZvdW5kXCIsIG1lc3NhZ2U6IGBubyByb3V0ZSBmb3IgJHtyZXEubWV0aG9kfSAke3BhdGh9YCB9KTtcbn1cbiJdLCJuYW1lcyI6W10sIm1hcHBpbmdzIjoiQUFBQSxpR0FBaUc7QUFDakcsa0dBQWtHO0FBQ2xHLGlFQUFpRTtBQUNqRSxvQ0FBb0M7QUFrQnBDLE1BQU0sZUFBZTtFQUFFLGdCQUFnQjtBQUFrQztBQUV6RSxTQUFTLEtBQUssTUFBYyxFQUFFLElBQWE7RUFDekMsT0FBTyxJQUFJLFNBQVMsS0FBSyxTQUFTLENBQUMsT0FBTztJQUFFO0lBQVEsU0FBUztFQUFhO0FBQzVFO0FBRUEsc0ZBQXNGLEdBQ3RGLGVBQWUsT0FBTyxHQUFZLEVBQUUsSUFBVTtFQUM1QyxNQUFNLE1BQU0sS0FBSyxHQUFHLElBQUksQ0FBQyxJQUFNLFlBQVksR0FBRyxFQUFFO0VBQ2hELE1BQU0sVUFBa0M7SUFBRSxnQkFBZ0I7RUFBbUI7RUFDN0UsS0FBSyxNQUFNLFFBQVE7SUFBQztJQUFpQjtHQUFTLENBQUU7SUFDOUMsTUFBTSxRQUFRLElBQUksT0FBTyxDQUFDLEdBQUcsQ0FBQztJQUM5QixJQUFJLE9BQU8sT0FBTyxDQUFDLEtBQUssR0FBRztFQUM3QjtFQUNBLE1BQU0sVUFBVTtFQUNoQixJQUFJLFdBQVc7RUFDZixJQUFJLGFBQTRCO0VBQ2hDLElBQUk7SUFDRixNQUFNLE9BQU8sTUFBTSxLQUFLLEtBQUssQ0FBQyxHQUFHLEtBQUssV0FBVyxDQUFDLG1CQUFtQixDQUFDLEVBQUU7TUFDdEUsUUFBUTtNQUNSO01BQ0EsTUFBTTtJQUNSO0lBQ0EsSUFBSSxLQUFLLEVBQUUsRUFBRTtNQUNYLE1BQU0sT0FBTyxNQUFNLEtBQUssSUFBSTtNQUM1QixXQUFXLE1BQU0sT0FBTztNQUN4QixhQUFhLE9BQU8sTUFBTSxnQkFBZ0IsV0FBVyxLQUFLLFdBQVcsR0FBRztJQUMxRSxPQUFPO01BQ0wsTUFBTSxLQUFLLElBQUksRUFBRTtJQUNuQjtFQUNGLEVBQUUsT0FBTTtJQUNOLFdBQVc7RUFDYjtFQUNBLE1BQU0sVUFBVSxLQUFLLEtBQUssQ0FBQyxDQUFDLFFBQVEsT0FBTyxJQUFJLE9BQU87RUFDdEQsTUFBTSxPQUFlO0lBQUUsSUFBSTtJQUFVO0lBQVUsYUFBYTtJQUFZLFlBQVk7RUFBUTtFQUM1RixPQUFPLEtBQUssV0FBVyxNQUFNLEtBQUs7QUFDcEM7QUFFQSxPQUFPLGVBQWUsUUFBUSxHQUFZLEVBQUUsSUFBVTtFQUNwRCxNQUFNLE9BQU8sSUFBSSxJQUFJLElBQUksR0FBRyxFQUFFLFFBQVEsQ0FBQyxPQUFPLENBQUMsUUFBUTtFQUN2RCxJQUFJLFNBQVMsZ0JBQWdCO0lBQzNCLElBQUksSUFBSSxNQUFNLEtBQUssT0FBTyxPQUFPLEtBQUssS0FBSztNQUFFLE9BQU87TUFBc0IsU0FBUztJQUFVO0lBQzdGLE9BQU8sTUFBTSxPQUFPLEtBQUs7RUFDM0I7RUFDQSxPQUFPLEtBQUssS0FBSztJQUFFLE9BQU87SUFBYSxTQUFTLENBQUMsYUFBYSxFQUFFLElBQUksTUFBTSxDQUFDLENBQUMsRUFBRSxNQUFNO0VBQUM7QUFDdkYifQ==
// denoCacheMetadata=3271005793021072563,1655749555369174316