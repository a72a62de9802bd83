-- More hot helpers planned once per connection instead of once per call (the same reason as
-- 20261203002000_hot_helpers_planned_once: a SQL function with SET search_path is never inlined,
-- and Postgres plans its query again at every call):
-- * shopsync.config_value() (twice a pull: the rate limit and the page's byte budget; once a push)
--   and shopsync.device_secret_header() (every device RPC): about 0.04-0.06 ms a call each.
-- * shopsync.canonical_json(): the checksum upkeep of json columns calls it once per value and
--   again for every nested value (25 calls for a sale's invoice lines, 2.1 ms plus 0.3-0.8 ms of
--   planning); as PL/pgSQL a 3-line invoice's lines take 0.86 ms instead of 1.18 (1,000 values).
--   (20261204001000_a_sale_cheaper makes it cheaper again.)
-- As PL/pgSQL the plan is cached per connection: same query, same answers, same errors. Privileges
-- stay as granted where each function was created (create or replace keeps them).

-- A live database: wait at most this long for a lock or a statement, then fail and retry later.
set local lock_timeout = '5s';
set local statement_timeout = '60s';

create or replace function shopsync.config_value(p_key text)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
begin
  return (select c.value from shopsync.config as c where c.key = p_key);
end;
$$;

create or replace function shopsync.device_secret_header()
returns text
language plpgsql
stable
set search_path = ''
as $$
begin
  return nullif(nullif(pg_catalog.current_setting('request.headers', true), '')::json ->> 'x-device-secret', '');
end;
$$;

create or replace function shopsync.canonical_json(p_value jsonb)
returns text
language plpgsql
immutable
strict
parallel safe
set search_path = ''
as $$
begin
  return case jsonb_typeof(p_value)
    when 'object' then '{' || coalesce((
      select string_agg(to_jsonb(e.key)::text || ':' || shopsync.canonical_json(e.value), ',' order by e.key collate "C")
      from jsonb_each(p_value) as e (key, value)
    ), '') || '}'
    when 'array' then '[' || coalesce((
      select string_agg(shopsync.canonical_json(e.value), ',' order by e.n)
      from jsonb_array_elements(p_value) with ordinality as e (value, n)
    ), '') || ']'
    when 'number' then trim_scale(p_value::numeric)::text
    else p_value::text
  end;
end;
$$;
