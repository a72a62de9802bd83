// Runs one Supabase edge function under plain Deno for the shopsync local stack.
// Supabase functions call Deno.serve(handler); the edge runtime decides the port. Here the gateway
// does: this host replaces Deno.serve so the function listens on SHOPSYNC_FUNCTION_PORT, then
// imports the function module unchanged.
const port = Number(Deno.env.get("SHOPSYNC_FUNCTION_PORT"));
const entry = Deno.env.get("SHOPSYNC_FUNCTION_ENTRY");
if (!port || !entry) throw new Error("SHOPSYNC_FUNCTION_PORT and SHOPSYNC_FUNCTION_ENTRY are required");

type Handler = (req: Request, info: Deno.ServeHandlerInfo) => Response | Promise<Response>;
const realServe = Deno.serve.bind(Deno);
// deno-lint-ignore no-explicit-any
(Deno as any).serve = (...args: any[]) => {
  let handler: Handler | undefined = args.find((a) => typeof a === "function");
  if (!handler) handler = args.find((a) => a && typeof a.handler === "function")?.handler;
  if (!handler) throw new Error("Deno.serve was called without a handler");
  return realServe({ port, hostname: "127.0.0.1", onListen: () => {} }, handler);
};
await import(entry);
