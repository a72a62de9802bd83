// Supabase edge function `sync`. The edge runtime (and shopsync's local function host, which
// imports this module) serves whatever handler is passed to Deno.serve.
import { handler } from "./handler.ts";

const supabaseUrl = Deno.env.get("SUPABASE_URL");
if (!supabaseUrl) throw new Error("SUPABASE_URL is not set");

Deno.serve((req) => handler(req, { fetch, supabaseUrl }));
