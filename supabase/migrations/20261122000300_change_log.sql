-- The change log: every write to a synced table, on every path (RPC or direct table write under
-- RLS), gets a version bump, server timestamps and a commit-ordered per-shop sequence number.
--
-- Ordering: seq comes from the shop's counter row in shopsync.shop_cursor, bumped once per
-- statement by a statement-level trigger with a transition table. The row lock on the counter is
-- held until commit, so within a shop seqs are assigned in commit order: a pull that has seen seq n
-- has seen every seq below n. (Per-statement bumps keep ~0.5x the speed of a bare insert; per-row
-- ones ~0.2x, and degrade inside large transactions: see docs in README.)

create table shopsync.shop_cursor (
  shop_id uuid primary key references public.shops (id),
  last_seq bigint not null default 0,
  floor_seq bigint not null default 0
);
comment on table shopsync.shop_cursor is
'Per shop: the last change_log seq handed out, and the floor below which pulls must reset.';

create or replace function shopsync.create_shop_cursor()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into shopsync.shop_cursor (shop_id) values (new.id) on conflict do nothing;
  return null;
end;
$$;

create trigger shops_create_cursor after insert on public.shops
for each row execute function shopsync.create_shop_cursor();

create table shopsync.change_log (
  shop_id uuid not null,
  seq bigint not null,
  table_name text not null,
  row_id uuid not null,
  op text not null check (op in ('insert', 'update', 'delete')),
  version bigint not null,
  changed_columns text[],
  row jsonb not null,
  device_id uuid,
  client_ts timestamptz not null,
  changed_at timestamptz not null default now(),
  primary key (shop_id, seq)
);
create index change_log_row_idx on shopsync.change_log (shop_id, table_name, row_id, version);
comment on table shopsync.change_log is
'One entry per row version of a synced table, ordered per shop by seq (commit order).';

-- The registry of synced tables ---------------------------------------------------------------
create table shopsync.synced_tables (
  table_name text primary key,
  policy text not null check (policy in ('server_wins', 'last_write_wins', 'manual', 'append_only', 'server_only')),
  write_roles text[] not null default array['owner', 'staff'],
  apply_order integer not null default 100,
  validator text,
  registered_at timestamptz not null default now()
);
comment on table shopsync.synced_tables is
'Synced tables and their conflict policy. Add one with shopsync.register_table().';
comment on column shopsync.synced_tables.validator is
'Optional set-wise pre-validation for pushes: a function (p_shop uuid, p_role text, p_round int) '
'that marks events of this table in pg_temp.push_events as rejected.';

create table shopsync.schema_state (
  id boolean primary key default true check (id),
  version integer not null default 0
);
insert into shopsync.schema_state (version) values (0);

-- Columns every synced table has and only the server writes.
create or replace function shopsync.system_columns()
returns text[]
language sql
immutable
set search_path = ''
as $$
  select array[
    'id', 'shop_id', 'version', 'created_at', 'updated_at', 'deleted_at', 'last_device_id', 'client_changed_at'
  ]
$$;

-- The client-writable columns of a synced table, with what validation and the writers need.
create or replace function shopsync.table_columns(p_table text)
returns table (
  column_name text, column_type text, not_null boolean, has_default boolean, default_expr text, is_system boolean
)
language sql
stable
set search_path = ''
as $$
  select
    a.attname::text,
    pg_catalog.format_type(a.atttypid, a.atttypmod),
    a.attnotnull,
    d.adbin is not null,
    pg_catalog.pg_get_expr(d.adbin, d.adrelid),
    a.attname = any (shopsync.system_columns())
  from pg_catalog.pg_attribute as a
  left join pg_catalog.pg_attrdef as d on d.adrelid = a.attrelid and d.adnum = a.attnum
  where a.attrelid = ('public.' || quote_ident(p_table))::regclass
    and a.attnum > 0
    and not a.attisdropped
  order by a.attnum
$$;

-- Row stamping: versions, server clock, immutable keys, no hard deletes -------------------------
create or replace function shopsync.stamp_row()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_device uuid := nullif(current_setting('shopsync.device_id', true), '')::uuid;
begin
  if tg_op = 'INSERT' then
    new.version := 1;
    new.created_at := now();
    new.updated_at := now();
    new.last_device_id := v_device;
    -- Clients' clocks may run fast: a client timestamp never exceeds the server's.
    new.client_changed_at := case when v_device is null then now() else least(coalesce(new.client_changed_at, now()), now()) end;
    if new.deleted_at is not null then
      new.deleted_at := now();
    end if;
    return new;
  elsif tg_op = 'UPDATE' then
    if new.id is distinct from old.id or new.shop_id is distinct from old.shop_id then
      raise exception '%.id and %.shop_id are immutable', tg_table_name, tg_table_name
        using errcode = 'SS001', hint = 'Create a new row instead.';
    end if;
    new.version := old.version + 1;
    new.created_at := old.created_at;
    new.updated_at := now();
    new.last_device_id := v_device;
    new.client_changed_at := case when v_device is null then now() else least(coalesce(new.client_changed_at, now()), now()) end;
    if new.deleted_at is not null and old.deleted_at is null then
      new.deleted_at := now();
    elsif new.deleted_at is not null then
      new.deleted_at := old.deleted_at;
    end if;
    return new;
  else
    if current_setting('shopsync.purging', true) = 'on' then
      return old;
    end if;
    raise exception 'rows of % are never hard-deleted; set deleted_at (soft delete)', tg_table_name
      using errcode = 'SS002', hint = 'Only the retention job purges tombstones.';
  end if;
end;
$$;

create or replace function shopsync.refuse_truncate()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  raise exception '% cannot be truncated', tg_table_name using errcode = 'SS002';
end;
$$;

-- For append-only tables (invoices, stock movements): no update, delete or truncate, by anyone.
create or replace function shopsync.refuse_change()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  raise exception '% is append-only: % is refused for every role', tg_table_name, lower(tg_op)
    using errcode = 'SS107', hint = 'append_only';
end;
$$;

-- Change-log writers (statement level, set-wise) --------------------------------------------------
create or replace function shopsync.log_inserts()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  with counts as (
    select r.shop_id, count(*) as n from new_rows as r group by r.shop_id
  ),

  bumped as (
    update shopsync.shop_cursor as c
    set last_seq = c.last_seq + counts.n
    from counts
    where c.shop_id = counts.shop_id
    returning c.shop_id, c.last_seq - counts.n as base
  )

  insert into shopsync.change_log (
    shop_id, seq, table_name, row_id, op, version, changed_columns, row, device_id, client_ts
  )
  select
    r.shop_id,
    b.base + row_number() over (partition by r.shop_id order by r.id),
    tg_table_name,
    r.id,
    'insert',
    r.version,
    null,
    to_jsonb(r),
    r.last_device_id,
    r.client_changed_at
  from new_rows as r
  inner join bumped as b on r.shop_id = b.shop_id;
  return null;
end;
$$;

create or replace function shopsync.log_updates()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  with pairs as (
    select n.shop_id, n.id, n.version, n.last_device_id, n.client_changed_at, n.deleted_at,
           o.deleted_at as old_deleted_at, to_jsonb(n) as new_row, to_jsonb(o) as old_row
    from new_rows as n
    inner join old_rows as o on n.id = o.id
  ),

  counts as (
    select p.shop_id, count(*) as n from pairs as p group by p.shop_id
  ),

  bumped as (
    update shopsync.shop_cursor as c
    set last_seq = c.last_seq + counts.n
    from counts
    where c.shop_id = counts.shop_id
    returning c.shop_id, c.last_seq - counts.n as base
  ),

  logged as (
    insert into shopsync.change_log (
      shop_id, seq, table_name, row_id, op, version, changed_columns, row, device_id, client_ts
    )
    select
      p.shop_id,
      b.base + row_number() over (partition by p.shop_id order by p.id),
      tg_table_name,
      p.id,
      case when p.deleted_at is not null and p.old_deleted_at is null then 'delete' else 'update' end,
      p.version,
      array(
        select e.key from jsonb_each(p.new_row) as e (key, value)
        where e.key <> all (shopsync.system_columns()) and e.value is distinct from p.old_row -> e.key
      ),
      p.new_row,
      p.last_device_id,
      p.client_changed_at
    from pairs as p
    inner join bumped as b on p.shop_id = b.shop_id
  )

  insert into shopsync.audit_log (shop_id, actor, action, table_name, row_id)
  select p.shop_id, auth.uid(), case when p.deleted_at is not null then 'delete' else 'restore' end, tg_table_name, p.id
  from pairs as p
  where p.deleted_at is distinct from p.old_deleted_at;
  return null;
end;
$$;

-- Registering a synced table: one call --------------------------------------------------------------
-- The table needs `id uuid primary key` and `shop_id uuid not null references public.shops`;
-- register_table adds the system columns, the shop_id index, RLS policies, grants and triggers.
create or replace function shopsync.register_table(
  p_table regclass,
  p_policy text,
  p_write_roles text[] default array['owner', 'staff'],
  p_apply_order integer default 100,
  p_validator text default null
)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_schema text;
  v_name text;
  v_roles text := array_to_string(array(select quote_literal(r) from unnest(p_write_roles) as r), ', ');
begin
  select n.nspname, c.relname into v_schema, v_name
  from pg_catalog.pg_class as c join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
  where c.oid = p_table;
  if v_schema <> 'public' then
    raise exception 'synced tables live in schema public, not %', v_schema;
  end if;
  if not exists (select 1 from pg_catalog.pg_attribute where attrelid = p_table and attname = 'shop_id' and not attisdropped)
     or not exists (select 1 from pg_catalog.pg_attribute where attrelid = p_table and attname = 'id' and not attisdropped) then
    raise exception 'table % needs columns id uuid primary key and shop_id uuid not null', p_table;
  end if;

  execute format($f$
    alter table %1$s
      add column if not exists version bigint not null default 1,
      add column if not exists created_at timestamptz not null default now(),
      add column if not exists updated_at timestamptz not null default now(),
      add column if not exists deleted_at timestamptz,
      add column if not exists last_device_id uuid,
      add column if not exists client_changed_at timestamptz not null default now()
  $f$, p_table);
  execute format('create index if not exists %I on %s (shop_id)', v_name || '_shop_id_idx', p_table);

  execute format('drop trigger if exists zz_stamp on %s', p_table);
  execute format('drop trigger if exists zz_log_insert on %s', p_table);
  execute format('drop trigger if exists zz_log_update on %s', p_table);
  execute format('drop trigger if exists zz_no_truncate on %s', p_table);
  execute format(
    'create trigger zz_stamp before insert or update or delete on %s for each row execute function shopsync.stamp_row()',
    p_table);
  execute format(
    'create trigger zz_log_insert after insert on %s referencing new table as new_rows '
    'for each statement execute function shopsync.log_inserts()', p_table);
  execute format(
    'create trigger zz_log_update after update on %s referencing old table as old_rows new table as new_rows '
    'for each statement execute function shopsync.log_updates()', p_table);
  execute format(
    'create trigger zz_no_truncate before truncate on %s for each statement execute function shopsync.refuse_truncate()',
    p_table);

  execute format('alter table %s enable row level security', p_table);
  execute format('drop policy if exists %I on %s', v_name || '_select', p_table);
  execute format('drop policy if exists %I on %s', v_name || '_insert', p_table);
  execute format('drop policy if exists %I on %s', v_name || '_update', p_table);
  execute format(
    'create policy %I on %s for select to authenticated using (shop_id = (select shopsync.current_shop_id()))',
    v_name || '_select', p_table);
  if p_policy not in ('server_only', 'append_only') then
    execute format(
      'create policy %I on %s for insert to authenticated with check '
      '(shop_id = (select shopsync.current_shop_id()) and (select shopsync.current_shop_role()) = any (array[%s]))',
      v_name || '_insert', p_table, v_roles);
    execute format(
      'create policy %I on %s for update to authenticated '
      'using (shop_id = (select shopsync.current_shop_id()) and (select shopsync.current_shop_role()) = any (array[%s])) '
      'with check (shop_id = (select shopsync.current_shop_id()))',
      v_name || '_update', p_table, v_roles);
  elsif p_policy = 'append_only' then
    execute format(
      'create policy %I on %s for insert to authenticated with check '
      '(shop_id = (select shopsync.current_shop_id()) and (select shopsync.current_shop_role()) = any (array[%s]))',
      v_name || '_insert', p_table, v_roles);
  end if;
  execute format('revoke all on %s from anon', p_table);
  execute format('revoke delete, truncate on %s from authenticated', p_table);

  insert into shopsync.synced_tables (table_name, policy, write_roles, apply_order, validator)
  values (v_name, p_policy, p_write_roles, p_apply_order, p_validator)
  on conflict (table_name) do update
  set policy = excluded.policy, write_roles = excluded.write_roles,
      apply_order = excluded.apply_order, validator = excluded.validator;
  update shopsync.schema_state set version = version + 1;
end;
$$;

comment on function shopsync.register_table(regclass, text, text[], integer, text) is
'Make a public table synced: system columns, shop index, RLS policies, version/change-log triggers. '
'Call again after altering the table: it bumps the schema version clients see in sync_schema().';
