// node:assert is built into Deno: no registry needed to run the tests offline.
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { handler } from "./handler.ts";
const URL_BASE = "http://functions.test";
function fakeFetch(respond, seen) {
  return (input, init)=>{
    seen.push({
      url: String(input),
      init
    });
    return Promise.resolve(respond());
  };
}
function deps(fetchImpl) {
  let t = 1000;
  return {
    fetch: fetchImpl,
    supabaseUrl: "http://api.test",
    now: ()=>t += 12.5
  };
}
Deno.test("GET /sync/health calls the health RPC with the caller's credentials", async ()=>{
  const seen = [];
  const f = fakeFetch(()=>Response.json({
      ok: true,
      server_time: "2026-11-22T12:00:00+00:00"
    }), seen);
  const req = new Request(`${URL_BASE}/sync/health`, {
    headers: {
      authorization: "Bearer abc",
      apikey: "key-1",
      "x-other": "not forwarded"
    }
  });
  const resp = await handler(req, deps(f));
  assertEquals(resp.status, 200);
  assertEquals(await resp.json(), {
    ok: true,
    database: true,
    server_time: "2026-11-22T12:00:00+00:00",
    latency_ms: 12.5
  });
  assertEquals(seen.length, 1);
  assertEquals(seen[0].url, "http://api.test/rest/v1/rpc/health");
  assertEquals(seen[0].init?.method, "POST");
  const sent = new Headers(seen[0].init?.headers);
  assertEquals(sent.get("authorization"), "Bearer abc");
  assertEquals(sent.get("apikey"), "key-1");
  assertEquals(sent.get("x-other"), null);
});
Deno.test("GET /sync/health reports database false when the RPC fails", async ()=>{
  const f = fakeFetch(()=>Response.json({
      code: "PGRST301",
      message: "JWT expired"
    }, {
      status: 401
    }), []);
  const resp = await handler(new Request(`${URL_BASE}/sync/health`), deps(f));
  assertEquals(resp.status, 503);
  const body = await resp.json();
  assertEquals(body.ok, false);
  assertEquals(body.database, false);
  assertEquals(body.server_time, null);
});
Deno.test("GET /sync/health reports database false when the API is unreachable", async ()=>{
  const f = ()=>Promise.reject(new TypeError("connection refused"));
  const resp = await handler(new Request(`${URL_BASE}/sync/health`), deps(f));
  assertEquals(resp.status, 503);
  assertEquals((await resp.json()).database, false);
});
Deno.test("other paths answer 404 JSON without calling the database", async ()=>{
  const seen = [];
  const f = fakeFetch(()=>Response.json({
      ok: true
    }), seen);
  const resp = await handler(new Request(`${URL_BASE}/sync/pull`), deps(f));
  assertEquals(resp.status, 404);
  assertEquals(resp.headers.get("content-type"), "application/json; charset=utf-8");
  assertEquals((await resp.json()).error, "not_found");
  assertEquals(seen.length, 0);
});
//# sourceMappingURL=data:application/json;base64,eyJ2ZXJzaW9uIjozLCJzb3VyY2VzIjpbImZpbGU6Ly8vd29yay93dC1zdGFjay9zdXBhYmFzZS9mdW5jdGlvbnMvc3luYy9pbmRleC50ZXN0LnRzIl0sInNvdXJjZXNDb250ZW50IjpbIi8vIG5vZGU6YXNzZXJ0IGlzIGJ1aWx0IGludG8gRGVubzogbm8gcmVnaXN0cnkgbmVlZGVkIHRvIHJ1biB0aGUgdGVzdHMgb2ZmbGluZS5cbmltcG9ydCB7IGRlZXBTdHJpY3RFcXVhbCBhcyBhc3NlcnRFcXVhbHMgfSBmcm9tIFwibm9kZTphc3NlcnQvc3RyaWN0XCI7XG5pbXBvcnQgeyB0eXBlIERlcHMsIGhhbmRsZXIgfSBmcm9tIFwiLi9oYW5kbGVyLnRzXCI7XG5cbmNvbnN0IFVSTF9CQVNFID0gXCJodHRwOi8vZnVuY3Rpb25zLnRlc3RcIjtcblxuaW50ZXJmYWNlIFNlZW4ge1xuICB1cmw6IHN0cmluZztcbiAgaW5pdDogUmVxdWVzdEluaXQgfCB1bmRlZmluZWQ7XG59XG5cbmZ1bmN0aW9uIGZha2VGZXRjaChyZXNwb25kOiAoKSA9PiBSZXNwb25zZSB8IFByb21pc2U8UmVzcG9uc2U+LCBzZWVuOiBTZWVuW10pOiB0eXBlb2YgZmV0Y2gge1xuICByZXR1cm4gKChpbnB1dDogc3RyaW5nIHwgVVJMIHwgUmVxdWVzdCwgaW5pdD86IFJlcXVlc3RJbml0KSA9PiB7XG4gICAgc2Vlbi5wdXNoKHsgdXJsOiBTdHJpbmcoaW5wdXQpLCBpbml0IH0pO1xuICAgIHJldHVybiBQcm9taXNlLnJlc29sdmUocmVzcG9uZCgpKTtcbiAgfSkgYXMgdHlwZW9mIGZldGNoO1xufVxuXG5mdW5jdGlvbiBkZXBzKGZldGNoSW1wbDogdHlwZW9mIGZldGNoKTogRGVwcyB7XG4gIGxldCB0ID0gMTAwMDtcbiAgcmV0dXJuIHsgZmV0Y2g6IGZldGNoSW1wbCwgc3VwYWJhc2VVcmw6IFwiaHR0cDovL2FwaS50ZXN0XCIsIG5vdzogKCkgPT4gKHQgKz0gMTIuNSkgfTtcbn1cblxuRGVuby50ZXN0KFwiR0VUIC9zeW5jL2hlYWx0aCBjYWxscyB0aGUgaGVhbHRoIFJQQyB3aXRoIHRoZSBjYWxsZXIncyBjcmVkZW50aWFsc1wiLCBhc3luYyAoKSA9PiB7XG4gIGNvbnN0IHNlZW46IFNlZW5bXSA9IFtdO1xuICBjb25zdCBmID0gZmFrZUZldGNoKCgpID0+IFJlc3BvbnNlLmpzb24oeyBvazogdHJ1ZSwgc2VydmVyX3RpbWU6IFwiMjAyNi0xMS0yMlQxMjowMDowMCswMDowMFwiIH0pLCBzZWVuKTtcbiAgY29uc3QgcmVxID0gbmV3IFJlcXVlc3QoYCR7VVJMX0JBU0V9L3N5bmMvaGVhbHRoYCwge1xuICAgIGhlYWRlcnM6IHsgYXV0aG9yaXphdGlvbjogXCJCZWFyZXIgYWJjXCIsIGFwaWtleTogXCJrZXktMVwiLCBcIngtb3RoZXJcIjogXCJub3QgZm9yd2FyZGVkXCIgfSxcbiAgfSk7XG4gIGNvbnN0IHJlc3AgPSBhd2FpdCBoYW5kbGVyKHJlcSwgZGVwcyhmKSk7XG4gIGFzc2VydEVxdWFscyhyZXNwLnN0YXR1cywgMjAwKTtcbiAgYXNzZXJ0RXF1YWxzKGF3YWl0IHJlc3AuanNvbigpLCB7XG4gICAgb2s6IHRydWUsXG4gICAgZGF0YWJhc2U6IHRydWUsXG4gICAgc2VydmVyX3RpbWU6IFwiMjAyNi0xMS0yMlQxMjowMDowMCswMDowMFwiLFxuICAgIGxhdGVuY3lfbXM6IDEyLjUsXG4gIH0pO1xuICBhc3NlcnRFcXVhbHMoc2Vlbi5sZW5ndGgsIDEpO1xuICBhc3NlcnRFcXVhbHMoc2VlblswXS51cmwsIFwiaHR0cDovL2FwaS50ZXN0L3Jlc3QvdjEvcnBjL2hlYWx0aFwiKTtcbiAgYXNzZXJ0RXF1YWxzKHNlZW5bMF0uaW5pdD8ubWV0aG9kLCBcIlBPU1RcIik7XG4gIGNvbnN0IHNlbnQgPSBuZXcgSGVhZGVycyhzZWVuWzBdLmluaXQ/LmhlYWRlcnMpO1xuICBhc3NlcnRFcXVhbHMoc2VudC5nZXQoXCJhdXRob3JpemF0aW9uXCIpLCBcIkJlYXJlciBhYmNcIik7XG4gIGFzc2VydEVxdWFscyhzZW50LmdldChcImFwaWtleVwiKSwgXCJrZXktMVwiKTtcbiAgYXNzZXJ0RXF1YWxzKHNlbnQuZ2V0KFwieC1vdGhlclwiKSwgbnVsbCk7XG59KTtcblxuRGVuby50ZXN0KFwiR0VUIC9zeW5jL2hlYWx0aCByZXBvcnRzIGRhdGFiYXNlIGZhbHNlIHdoZW4gdGhlIFJQQyBmYWlsc1wiLCBhc3luYyAoKSA9PiB7XG4gIGNvbnN0IGYgPSBmYWtlRmV0Y2goKCkgPT4gUmVzcG9uc2UuanNvbih7IGNvZGU6IFwiUEdSU1QzMDFcIiwgbWVzc2FnZTogXCJKV1QgZXhwaXJlZFwiIH0sIHsgc3RhdHVzOiA0MDEgfSksIFtdKTtcbiAgY29uc3QgcmVzcCA9IGF3YWl0IGhhbmRsZXIobmV3IFJlcXVlc3QoYCR7VVJMX0JBU0V9L3N5bmMvaGVhbHRoYCksIGRlcHMoZikpO1xuICBhc3NlcnRFcXVhbHMocmVzcC5zdGF0dXMsIDUwMyk7XG4gIGNvbnN0IGJvZHkgPSBhd2FpdCByZXNwLmpzb24oKTtcbiAgYXNzZXJ0RXF1YWxzKGJvZHkub2ssIGZhbHNlKTtcbiAgYXNzZXJ0RXF1YWxzKGJvZHkuZGF0YWJhc2UsIGZhbHNlKTtcbiAgYXNzZXJ0RXF1YWxzKGJvZHkuc2VydmVyX3RpbWUsIG51bGwpO1xufSk7XG5cbkRlbm8udGVzdChcIkdFVCAvc3luYy9oZWFsdGggcmVwb3J0cyBkYXRhYmFzZSBmYWxzZSB3aGVuIHRoZSBBUEkgaXMgdW5yZWFjaGFibGVcIiwgYXN5bmMgKCkgPT4ge1xuICBjb25zdCBmID0gKCgpID0+IFByb21pc2UucmVqZWN0KG5ldyBUeXBlRXJyb3IoXCJjb25uZWN0aW9uIHJlZnVzZWRcIikpKSBhcyB0eXBlb2YgZmV0Y2g7XG4gIGNvbnN0IHJlc3AgPSBhd2FpdCBoYW5kbGVyKG5ldyBSZXF1ZXN0KGAke1VSTF9CQVNFfS9zeW5jL2hlYWx0aGApLCBkZXBzKGYpKTtcbiAgYXNzZXJ0RXF1YWxzKHJlc3Auc3RhdHVzLCA1MDMpO1xuICBhc3NlcnRFcXVhbHMoKGF3YWl0IHJlc3AuanNvbigpKS5kYXRhYmFzZSwgZmFsc2UpO1xufSk7XG5cbkRlbm8udGVzdChcIm90aGVyIHBhdGhzIGFuc3dlciA0MDQgSlNPTiB3aXRob3V0IGNhbGxpbmcgdGhlIGRhdGFiYXNlXCIsIGFzeW5jICgpID0+IHtcbiAgY29uc3Qgc2VlbjogU2VlbltdID0gW107XG4gIGNvbnN0IGYgPSBmYWtlRmV0Y2goKCkgPT4gUmVzcG9uc2UuanNvbih7IG9rOiB0cnVlIH0pLCBzZWVuKTtcbiAgY29uc3QgcmVzcCA9IGF3YWl0IGhhbmRsZXIobmV3IFJlcXVlc3QoYCR7VVJMX0JBU0V9L3N5bmMvcHVsbGApLCBkZXBzKGYpKTtcbiAgYXNzZXJ0RXF1YWxzKHJlc3Auc3RhdHVzLCA0MDQpO1xuICBhc3NlcnRFcXVhbHMocmVzcC5oZWFkZXJzLmdldChcImNvbnRlbnQtdHlwZVwiKSwgXCJhcHBsaWNhdGlvbi9qc29uOyBjaGFyc2V0PXV0Zi04XCIpO1xuICBhc3NlcnRFcXVhbHMoKGF3YWl0IHJlc3AuanNvbigpKS5lcnJvciwgXCJub3RfZm91bmRcIik7XG4gIGFzc2VydEVxdWFscyhzZWVuLmxlbmd0aCwgMCk7XG59KTtcbiJdLCJuYW1lcyI6W10sIm1hcHBpbmdzIjoiQUFBQSwrRUFBK0U7QUFDL0UsU0FBUyxtQkFBbUIsWUFBWSxRQUFRLHFCQUFxQjtBQUNyRSxTQUFvQixPQUFPLFFBQVEsZUFBZTtBQUVsRCxNQUFNLFdBQVc7QUFPakIsU0FBUyxVQUFVLE9BQTJDLEVBQUUsSUFBWTtFQUMxRSxPQUFRLENBQUMsT0FBK0I7SUFDdEMsS0FBSyxJQUFJLENBQUM7TUFBRSxLQUFLLE9BQU87TUFBUTtJQUFLO0lBQ3JDLE9BQU8sUUFBUSxPQUFPLENBQUM7RUFDekI7QUFDRjtBQUVBLFNBQVMsS0FBSyxTQUF1QjtFQUNuQyxJQUFJLElBQUk7RUFDUixPQUFPO0lBQUUsT0FBTztJQUFXLGFBQWE7SUFBbUIsS0FBSyxJQUFPLEtBQUs7RUFBTTtBQUNwRjtBQUVBLEtBQUssSUFBSSxDQUFDLHVFQUF1RTtFQUMvRSxNQUFNLE9BQWUsRUFBRTtFQUN2QixNQUFNLElBQUksVUFBVSxJQUFNLFNBQVMsSUFBSSxDQUFDO01BQUUsSUFBSTtNQUFNLGFBQWE7SUFBNEIsSUFBSTtFQUNqRyxNQUFNLE1BQU0sSUFBSSxRQUFRLEdBQUcsU0FBUyxZQUFZLENBQUMsRUFBRTtJQUNqRCxTQUFTO01BQUUsZUFBZTtNQUFjLFFBQVE7TUFBUyxXQUFXO0lBQWdCO0VBQ3RGO0VBQ0EsTUFBTSxPQUFPLE1BQU0sUUFBUSxLQUFLLEtBQUs7RUFDckMsYUFBYSxLQUFLLE1BQU0sRUFBRTtFQUMxQixhQUFhLE1BQU0sS0FBSyxJQUFJLElBQUk7SUFDOUIsSUFBSTtJQUNKLFVBQVU7SUFDVixhQUFhO0lBQ2IsWUFBWTtFQUNkO0VBQ0EsYUFBYSxLQUFLLE1BQU0sRUFBRTtFQUMxQixhQUFhLElBQUksQ0FBQyxFQUFFLENBQUMsR0FBRyxFQUFFO0VBQzFCLGFBQWEsSUFBSSxDQUFDLEVBQUUsQ0FBQyxJQUFJLEVBQUUsUUFBUTtFQUNuQyxNQUFNLE9BQU8sSUFBSSxRQUFRLElBQUksQ0FBQyxFQUFFLENBQUMsSUFBSSxFQUFFO0VBQ3ZDLGFBQWEsS0FBSyxHQUFHLENBQUMsa0JBQWtCO0VBQ3hDLGFBQWEsS0FBSyxHQUFHLENBQUMsV0FBVztFQUNqQyxhQUFhLEtBQUssR0FBRyxDQUFDLFlBQVk7QUFDcEM7QUFFQSxLQUFLLElBQUksQ0FBQyw4REFBOEQ7RUFDdEUsTUFBTSxJQUFJLFVBQVUsSUFBTSxTQUFTLElBQUksQ0FBQztNQUFFLE1BQU07TUFBWSxTQUFTO0lBQWMsR0FBRztNQUFFLFFBQVE7SUFBSSxJQUFJLEVBQUU7RUFDMUcsTUFBTSxPQUFPLE1BQU0sUUFBUSxJQUFJLFFBQVEsR0FBRyxTQUFTLFlBQVksQ0FBQyxHQUFHLEtBQUs7RUFDeEUsYUFBYSxLQUFLLE1BQU0sRUFBRTtFQUMxQixNQUFNLE9BQU8sTUFBTSxLQUFLLElBQUk7RUFDNUIsYUFBYSxLQUFLLEVBQUUsRUFBRTtFQUN0QixhQUFhLEtBQUssUUFBUSxFQUFFO0VBQzVCLGFBQWEsS0FBSyxXQUFXLEVBQUU7QUFDakM7QUFFQSxLQUFLLElBQUksQ0FBQyx1RUFBdUU7RUFDL0UsTUFBTSxJQUFLLElBQU0sUUFBUSxNQUFNLENBQUMsSUFBSSxVQUFVO0VBQzlDLE1BQU0sT0FBTyxNQUFNLFFBQVEsSUFBSSxRQUFRLEdBQUcsU0FBUyxZQUFZLENBQUMsR0FBRyxLQUFLO0VBQ3hFLGFBQWEsS0FBSyxNQUFNLEVBQUU7RUFDMUIsYUFBYSxDQUFDLE1BQU0sS0FBSyxJQUFJLEVBQUUsRUFBRSxRQUFRLEVBQUU7QUFDN0M7QUFFQSxLQUFLLElBQUksQ0FBQyw0REFBNEQ7RUFDcEUsTUFBTSxPQUFlLEVBQUU7RUFDdkIsTUFBTSxJQUFJLFVBQVUsSUFBTSxTQUFTLElBQUksQ0FBQztNQUFFLElBQUk7SUFBSyxJQUFJO0VBQ3ZELE1BQU0sT0FBTyxNQUFNLFFBQVEsSUFBSSxRQUFRLEdBQUcsU0FBUyxVQUFVLENBQUMsR0FBRyxLQUFLO0VBQ3RFLGFBQWEsS0FBSyxNQUFNLEVBQUU7RUFDMUIsYUFBYSxLQUFLLE9BQU8sQ0FBQyxHQUFHLENBQUMsaUJBQWlCO0VBQy9DLGFBQWEsQ0FBQyxNQUFNLEtBQUssSUFBSSxFQUFFLEVBQUUsS0FBSyxFQUFFO0VBQ3hDLGFBQWEsS0FBSyxNQUFNLEVBQUU7QUFDNUIifQ==
// denoCacheMetadata=15683665198910860267,8947122857930424440