-- A value Postgres cannot store refuses its own event, never the whole push (issue 12, finding 8).
--
-- Before: sync_push(p_device_id uuid, p_events jsonb). PostgREST hands a named-argument call to
-- Postgres as `json_to_record($1::json) as _(p_device_id uuid, p_events jsonb)`: a text value
-- holding a NUL (\u0000) or a lone UTF-16 surrogate (\ud800) anywhere in the body failed that
-- conversion (22P05, 22P02) and the whole call answered 400; one such event queued by a JS client
-- wedged its device's outbox for good. Declaring p_events json does not help: json_to_record reads
-- every string of the body (it de-escapes them) whatever the declared type.
--
-- Now the HTTP entry point takes the request body as one unnamed json argument, which PostgREST
-- passes as `$1::json`: the json type keeps the body's text as it came (it accepts \u0000 and lone
-- surrogates). The body is converted to jsonb at once when it can be (every ordinary push, no extra
-- work); when it cannot, each offending escape is replaced by a marker unique to the call, each
-- event is converted on its own, and an event that held such a value (or any other value jsonb
-- refuses, e.g. a number out of numeric's range) is answered `rejected` / `invalid_value` with the
-- field named, in its place in the results; the other events are pushed as usual (shopsync.push,
-- unchanged, gets a `null` placeholder in the bad event's place, so batch size, order and
-- statistics stay as they were).
--
-- Callers:
--   * HTTP (supabase-js, supabase-py, the edge function, v0.1.0 clients): the body
--     {"p_device_id": ..., "p_events": [...]} no longer matches a function by argument names, so
--     PostgREST falls back to the function with a single unnamed json argument (this one); the
--     answer is the same jsonb as before.
--   * SQL (tests, tools): `public.sync_push(device uuid, events jsonb)` as before, positionally. Its
--     argument names differ from the HTTP body's keys on purpose, so PostgREST never picks it for
--     a push body (PostgREST prefers a by-name match to the unnamed-json fallback).

-- A live database: wait at most this long for a lock or a statement, then fail and retry later.
set local lock_timeout = '5s';
set local statement_timeout = '60s';

drop function public.sync_push(uuid, jsonb);

-- SQL callers: the events as jsonb (a jsonb value cannot hold NUL or a lone surrogate).
create function public.sync_push(p_device uuid, p_batch jsonb)
returns jsonb
language sql
volatile
set search_path = ''
as $$
  select shopsync.push(p_device, p_batch)
$$;
comment on function public.sync_push(uuid, jsonb) is
'Apply a batch of device events exactly once (SQL callers; HTTP bodies go to sync_push(json)).';

-- HTTP: the request body {"p_device_id": uuid, "p_events": [event, ...]} as PostgREST passes it.
create function public.sync_push(json)
returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_body jsonb;
  v_text text;
  v_nul text;
  v_sur text;
  v_clean json;
  v_device uuid;
  v_events json;
  v_staged jsonb[] := '{}'::jsonb[];
  v_poison jsonb := '{}'::jsonb;
  v_elem json;
  v_ord bigint;
  v_ev jsonb;
  v_why text;
  v_field text;
  v_k record;
  v_result jsonb;
begin
  if $1 is null or json_typeof($1) <> 'object' then
    return shopsync.push(null, null);  -- the caller's membership first, then PT400 invalid_payload
  end if;
  -- Every ordinary push: one conversion.
  begin
    v_body := $1::jsonb;
  exception when data_exception then
    v_body := null;
  end;
  if v_body is not null then
    if exists (select from jsonb_object_keys(v_body) as k where k not in ('p_device_id', 'p_events')) then
      raise exception 'sync_push takes p_device_id and p_events only'
        using errcode = 'PT400', detail = 'invalid_payload';
    end if;
    return shopsync.push((v_body ->> 'p_device_id')::uuid, v_body -> 'p_events');
  end if;

  -- A value jsonb refuses. Mark each real \u0000 escape and each lone surrogate escape (an escape
  -- is real when an even number of backslashes precedes it) with a marker of this call only.
  v_nul := 'shopsync-nul-' || gen_random_uuid();
  v_sur := 'shopsync-surrogate-' || gen_random_uuid();
  v_text := regexp_replace($1::text, '(?<!\\)((?:\\\\)*)\\u0000', '\1' || v_nul, 'g');
  v_text := regexp_replace(v_text,
    '(?<!\\)((?:\\\\)*)\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})', '\1' || v_sur, 'g');
  v_text := regexp_replace(v_text,
    '(?<!\\u[dD][89abAB][0-9a-fA-F]{2})(?<!\\)((?:\\\\)*)\\u[dD][c-fC-F][0-9a-fA-F]{2}', '\1' || v_sur, 'g');
  v_clean := v_text::json;
  if exists (select from json_object_keys(v_clean) as k where k not in ('p_device_id', 'p_events')) then
    raise exception 'sync_push takes p_device_id and p_events only'
      using errcode = 'PT400', detail = 'invalid_payload';
  end if;
  v_device := (v_clean ->> 'p_device_id')::uuid;
  v_events := v_clean -> 'p_events';
  if v_events is null or json_typeof(v_events) <> 'array' then
    return shopsync.push(v_device, v_events::jsonb);
  end if;

  for v_elem, v_ord in select e.value, e.ord from json_array_elements(v_events) with ordinality as e (value, ord) loop
    v_why := null;
    v_ev := null;
    if strpos(v_elem::text, v_nul) > 0 then
      v_why := 'text with a NUL character (\u0000)';
    elsif strpos(v_elem::text, v_sur) > 0 then
      v_why := 'text with a lone UTF-16 surrogate';
    else
      begin
        v_ev := v_elem::jsonb;
      exception when data_exception then
        v_why := sqlerrm;
      end;
    end if;
    if v_why is null then
      v_staged := v_staged || v_ev;
      continue;
    end if;
    -- The field: a column of data (or its name), else a top-level key of the event.
    v_field := null;
    if json_typeof(v_elem) = 'object' then
      for v_k in
        select 'data.' || d.key as path, d.value from json_each(
          case when json_typeof(v_elem -> 'data') = 'object' then v_elem -> 'data' else '{}'::json end) as d
        union all
        select t.key, t.value from json_each(v_elem) as t where t.key <> 'data'
      loop
        if strpos(v_k.path, v_nul) > 0 or strpos(v_k.path, v_sur) > 0
          or strpos(v_k.value::text, v_nul) > 0 or strpos(v_k.value::text, v_sur) > 0 then
          v_field := v_k.path;
        else
          begin
            perform v_k.value::jsonb;
          exception when data_exception then
            v_field := v_k.path;
          end;
        end if;
        exit when v_field is not null;
      end loop;
    end if;
    v_field := replace(replace(coalesce(v_field, 'the event'), v_nul, '\u0000'), v_sur, '\u(surrogate)');
    v_staged := v_staged || 'null'::jsonb;  -- shopsync.push answers it invalid_event; replaced below
    v_poison := v_poison || jsonb_build_object((v_ord - 1)::text, jsonb_build_object(
      'event_id', case when json_typeof(v_elem) = 'object'
        and (v_elem ->> 'event_id') ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
        then to_jsonb(v_elem ->> 'event_id') end,
      'status', 'rejected', 'version', null, 'reason', 'invalid_value', 'server_row', null,
      'field', v_field,
      'message', format('%s: %s cannot be stored; the event was not applied (the rest of the batch was)',
        v_field, v_why)));
  end loop;

  v_result := shopsync.push(v_device, to_jsonb(v_staged));
  if jsonb_typeof(v_result -> 'results') = 'array' then
    for v_k in select p.key, p.value from jsonb_each(v_poison) as p loop
      v_result := jsonb_set(v_result, array['results', v_k.key], v_k.value);
    end loop;
  end if;
  return v_result;
end;
$$;
comment on function public.sync_push(json) is
'Apply a batch of device events exactly once: the body {"p_device_id", "p_events"}. See docs/protocol.md.';

-- Privileges of this capability's objects.
revoke execute on function public.sync_push(uuid, jsonb) from public, anon;
revoke execute on function public.sync_push(json) from public, anon;
grant execute on function public.sync_push(uuid, jsonb) to authenticated, service_role;
grant execute on function public.sync_push(json) to authenticated, service_role;
