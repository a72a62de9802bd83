-- sync_schema: what clients build their local tables from; health(), the liveness probe, with the
-- schema version it reports.

create or replace function shopsync.describe_schema()
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'version', (select s.version from shopsync.schema_state as s),
    'system_columns', to_jsonb(shopsync.system_columns()),
    'tables', coalesce((
      select jsonb_agg(jsonb_build_object(
        'name', st.table_name,
        'policy', st.policy,
        'write_roles', to_jsonb(st.write_roles),
        'apply_order', st.apply_order,
        'columns', (
          select jsonb_agg(jsonb_build_object(
            'name', c.column_name, 'type', c.column_type, 'nullable', not c.not_null, 'system', c.is_system
          ))
          from shopsync.table_columns(st.table_name) as c
        )
      ) order by st.apply_order, st.table_name)
      from shopsync.synced_tables as st
    ), '[]'::jsonb)
  )
$$;

create or replace function public.sync_schema()
returns jsonb
language sql
stable
set search_path = ''
as $$
  select shopsync.describe_schema()
$$;
comment on function public.sync_schema() is
'Synced tables, their conflict policies and columns, and the schema version.';

-- The schema version is public knowledge: health() reports it (for the sync edge function).
create or replace function shopsync.schema_version()
returns integer
language sql
stable
security definer
set search_path = ''
as $$
  select s.version from shopsync.schema_state as s
$$;

create or replace function public.health()
returns jsonb
language sql
stable
set search_path = ''
as $$
  select jsonb_build_object(
    'ok', true,
    'server_time', pg_catalog.now(),
    'postgres', pg_catalog.current_setting('server_version'),
    'schema_version', shopsync.schema_version()
  )
$$;

comment on function public.health() is 'Liveness probe; callable by anyone.';
