-- Threat closed: a tenant-scoped table whose shop_id filter (every RLS check, every pull) turns
-- into a sequential scan over all shops' rows.
begin;
select plan(3);

-- TEST: every table with a shop_id column (public and shopsync) has an index led by shop_id
select is_empty(
  $$
    select c.oid::regclass::text
    from pg_class as c
    join pg_namespace as n on n.oid = c.relnamespace
    join pg_attribute as a on a.attrelid = c.oid and a.attname = 'shop_id' and not a.attisdropped
    where n.nspname in ('public', 'shopsync') and c.relkind in ('r', 'p')
      and not exists (
        select 1 from pg_index as i where i.indrelid = c.oid and i.indkey[0] = a.attnum
      )
  $$,
  'every shop_id column leads some index'
);

-- TEST: the check above looks at the synced tables and the change log
select ok(
  (
    select count(*) from pg_attribute as a inner join pg_class as c on a.attrelid = c.oid
    where
      a.attname = 'shop_id' and c.oid in (
        'public.customers'::regclass, 'public.products'::regclass,
        'public.orders'::regclass, 'public.order_items'::regclass, 'public.shop_settings'::regclass,
        'shopsync.change_log'::regclass
      )
  ) = 6,
  'synced tables and the change log carry shop_id'
);

-- TEST: a table registered for sync gets its shop_id index from register_table
create table public.tmp_index_probe (id uuid primary key, shop_id uuid not null references public.shops (id), name text);
set local client_min_messages = warning;
do $$ begin perform shopsync.register_table('public.tmp_index_probe', 'last_write_wins'); end $$;
select ok(
  exists (
    select 1 from pg_index as i
    inner join pg_attribute as a on i.indrelid = a.attrelid and a.attnum = i.indkey[0]
    where i.indrelid = 'public.tmp_index_probe'::regclass and a.attname = 'shop_id'
  ),
  'register_table indexes shop_id of a new synced table'
);

select * from finish();
rollback;
