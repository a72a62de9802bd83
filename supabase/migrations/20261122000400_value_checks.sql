-- Value checks: is a client's JSON value acceptable for a column? Set-wise validation without
-- subtransactions: every check answers true/false and never raises, so a push validates a whole
-- batch in a few statements and keeps exception blocks for the rare case a constraint only the
-- table knows is broken.

-- ISO-8601 date or timestamp (offset optional, UTC assumed), checked field by field before the cast
-- so an impossible date (2025-02-30, hour 25, offset +16) is answered with null, not an error.
create or replace function shopsync.try_timestamptz(p text)
returns timestamptz
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_year int;
  v_month int;
  v_rest text := substr(p, 17);  -- after YYYY-MM-DDTHH:MM: seconds and offset, if any
begin
  -- Match without capture groups (the regex engine's fast path), then read fixed positions.
  if p is null
     or p !~ '^\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?(?:[Zz]|[+-]\d{2}(?::?\d{2})?)?$' then
    return null;
  end if;
  v_year := substr(p, 1, 4)::int;
  v_month := substr(p, 6, 2)::int;
  if v_year < 1 or v_month not between 1 and 12 or substr(p, 9, 2)::int < 1
     or substr(p, 9, 2)::int > extract(day from (make_date(v_year, v_month, 1) + interval '1 month' - interval '1 day')) then
    return null;
  end if;
  if length(p) > 10 and (
    substr(p, 12, 2)::int > 23 or substr(p, 15, 2)::int > 59
    or (substr(p, 17, 1) = ':' and substr(p, 18, 2)::int > 59)
  ) then
    return null;
  end if;
  -- Offsets beyond what Postgres accepts (+-15:59).
  if v_rest ~ '[+-](?:1[6-9]|[2-9]\d)(?::?\d{2})?$' or v_rest ~ '[+-]\d{2}:?[6-9]\d$' then
    return null;
  end if;
  if length(p) = 10 or v_rest !~ '(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$' then
    return (p || case when length(p) = 10 then 'T00:00:00Z' else 'Z' end)::timestamptz;
  end if;
  return p::timestamptz;
end;
$$;

-- Is a JSON value acceptable for a column of the given type (format_type form)? Null is answered
-- true here; nullability is checked against the column separately.
--
-- The check is kept as SQL text so the push can inline it into its set-wise validation query:
-- calling a function per value costs far more than the check itself (a function with a SET clause
-- is re-planned on every call). value_check_sql(value_expr, type_expr) returns the expression.
create or replace function shopsync.value_check_sql(p_value text, p_type text)
returns text
language sql
immutable
set search_path = ''
as $$
  select replace(replace($check$(case
    when $v is null or jsonb_typeof($v) = 'null' then true
    when $t = 'text' or $t like 'character varying%' then
      jsonb_typeof($v) = 'string' and length($v #>> '{}') <= 10000
    when $t = 'uuid' then
      jsonb_typeof($v) = 'string'
      and ($v #>> '{}') ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
    when $t = 'boolean' then jsonb_typeof($v) = 'boolean'
    when $t in ('smallint', 'integer', 'bigint') then
      case
        when jsonb_typeof($v) <> 'number' or ($v #>> '{}') !~ '^-?\d{1,19}$' then false
        else ($v #>> '{}')::numeric between
          (case $t when 'smallint' then -32768 when 'integer' then -2147483648 else -9223372036854775808 end)
          and (case $t when 'smallint' then 32767 when 'integer' then 2147483647 else 9223372036854775807 end)
      end
    when $t like 'numeric%' then
      case
        when jsonb_typeof($v) not in ('number', 'string') then false
        when ($v #>> '{}') !~ '^-?\d{1,30}(\.\d{1,30})?$' then false
        when $t not like 'numeric(%,%)' then true
        -- numeric(p,s): fits without rounding (p and s read by position from the type text)
        else round(($v #>> '{}')::numeric, rtrim(split_part($t, ',', 2), ')')::int) = ($v #>> '{}')::numeric
          and abs(($v #>> '{}')::numeric) < 10::numeric ^ (
            split_part(substr($t, 9), ',', 1)::int - rtrim(split_part($t, ',', 2), ')')::int
          )
      end
    when $t in ('timestamp with time zone', 'timestamp without time zone', 'date') then
      jsonb_typeof($v) = 'string' and shopsync.try_timestamptz($v #>> '{}') is not null
    when $t in ('real', 'double precision') then jsonb_typeof($v) = 'number'
    when $t in ('json', 'jsonb') then true
    -- Any other type: the database decides when the batch is applied.
    else jsonb_typeof($v) in ('string', 'number', 'boolean')
  end)$check$, '$v', p_value), '$t', p_type)
$$;
