-- The canonical row text and row hash the change-log triggers compute (the expression
-- shopsync.canonical_column_sql builds per column) match the vectors that the Python client's tests
-- check too (supabase/tests/fixtures/row_hash_vectors.json, read relative to the project root).
\set vectors `cat supabase/tests/fixtures/row_hash_vectors.json`

begin;
select plan((select 2 * jsonb_array_length(:'vectors'::jsonb)));

-- A vector's row in a temp table of its columns, and its canonical text as the triggers render it.
create function pg_temp.vector_canonical(p_vector jsonb)
returns text
language plpgsql
set timezone to 'UTC'
set datestyle to 'ISO, YMD'
set extra_float_digits to 1
as $$
declare
  v_out text;
begin
  execute 'create temp table vector_row (' || (
    select string_agg(format('%I %s', c.value ->> 'name', c.value ->> 'type'), ', ' order by c.n)
    from jsonb_array_elements(p_vector -> 'columns') with ordinality as c (value, n)
  ) || ')';
  execute 'insert into vector_row values (' || (
    select string_agg(format('cast($1 ->> %L as %s)', c.value ->> 'name', c.value ->> 'type'), ', ' order by c.n)
    from jsonb_array_elements(p_vector -> 'columns') with ordinality as c (value, n)
  ) || ')' using p_vector -> 'values';
  execute 'select concat(' || (
    select string_agg(
      shopsync.canonical_column_sql(c.value ->> 'name', (c.value ->> 'type')::regtype), ', ''|'', '
      order by c.value ->> 'name' collate "C"
    )
    from jsonb_array_elements(p_vector -> 'columns') as c (value)
  ) || ') from vector_row as r' into v_out;
  drop table vector_row;
  return v_out;
end;
$$;

create temp table rendered as
select
  v.value ->> 'name' as name,
  v.value ->> 'canonical' as canonical,
  v.value ->> 'hash' as hash,
  pg_temp.vector_canonical(v.value) as got
from jsonb_array_elements(:'vectors'::jsonb) as v (value);

-- TEST: Postgres renders each vector's canonical text byte for byte.
select is(r.got, r.canonical, 'canonical text: ' || r.name)
from rendered as r;

-- TEST: and the same 64-bit hash (first 8 bytes of the MD5, as 16 hex digits).
select is(lpad(to_hex(('x' || left(md5(r.got), 16))::bit(64)::bigint), 16, '0'), r.hash, 'hash: ' || r.name)
from rendered as r;

select * from finish();
rollback;
