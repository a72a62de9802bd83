// The live-sync subscription as docs/protocol.md shows it, run with supabase-js (realtime-js, which
// negotiates serializer 2.0.0) against the local stack's Realtime stand-in. Driven by
// tests/stack/test_realtime_supabase_js.py: prints READY once joined (or REFUSED <reason>), then the
// first `changed` payload, then exits.
import { createClient } from "npm:@supabase/supabase-js@2.119.0";

const env = (name: string) => {
  const value = Deno.env.get(name);
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const token = env("USER_TOKEN");
const supabase = createClient(env("SUPABASE_URL"), env("SUPABASE_ANON_KEY"), { accessToken: async () => token });
await supabase.realtime.setAuth();

const heard = Promise.withResolvers<Record<string, unknown>>();
const joined = Promise.withResolvers<void>();
supabase
  .channel(`shop:${env("SHOP_ID")}`, { config: { private: true } })
  .on("broadcast", { event: "changed" }, ({ payload }) => heard.resolve(payload))
  .subscribe((status, err) => {
    if (status === "SUBSCRIBED") joined.resolve();
    else joined.reject(new Error(err?.message ?? status));
  });
try {
  await joined.promise;
} catch (err) {
  console.log(`REFUSED ${(err as Error).message}`);
  await supabase.removeAllChannels();
  Deno.exit(0);
}
console.log("READY");
console.log(`PAYLOAD ${JSON.stringify(await heard.promise)}`);
await supabase.removeAllChannels();
Deno.exit(0);
