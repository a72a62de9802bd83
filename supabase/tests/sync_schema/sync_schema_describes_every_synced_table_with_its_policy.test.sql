-- Threat closed: clients building local tables from a hand-kept copy that drifts from the server;
-- sync_schema is generated from the registry and the catalog.
begin;
select plan(8);

call tests.authenticate_as('staff@shop-a.test');
select public.sync_schema() as s \gset
reset role;

-- TEST: every registered table is described, in apply order, with its policy
select is(
  (select jsonb_agg(jsonb_build_array(t ->> 'name', t ->> 'policy')) from jsonb_array_elements((:'s'::jsonb) -> 'tables') as t),
  '[["shop_settings", "server_wins"], ["customers", "last_write_wins"], ["products", "last_write_wins"],
    ["orders", "manual"], ["order_items", "manual"], ["invoices", "append_only"],
    ["stock_movements", "append_only"], ["inventory_levels", "server_only"]]'::jsonb,
  'the synced tables with their conflict policies, in apply order'
);
select is(
  (select count(*)::int from jsonb_array_elements((:'s'::jsonb) -> 'tables')),
  (select count(*)::int from shopsync.synced_tables),
  'as many tables as the registry holds'
);
select ok(((:'s'::jsonb) ->> 'version')::int >= 1, 'a schema version is given');

-- TEST: columns match the catalog, with type and nullability
select is(
  (
    select c from jsonb_array_elements((:'s'::jsonb) -> 'tables') as t, jsonb_array_elements(t -> 'columns') as c
    where t ->> 'name' = 'products' and c ->> 'name' = 'price'
  ) - 'system',
  '{"name": "price", "type": "numeric(12,2)", "nullable": false}'::jsonb,
  'products.price is numeric(12,2), not null'
);
select is(
  (
    select c from jsonb_array_elements((:'s'::jsonb) -> 'tables') as t, jsonb_array_elements(t -> 'columns') as c
    where t ->> 'name' = 'customers' and c ->> 'name' = 'email'
  ) - 'system',
  '{"name": "email", "type": "text", "nullable": true}'::jsonb,
  'customers.email is nullable text'
);
select is(
  (
    select count(*)::int from jsonb_array_elements((:'s'::jsonb) -> 'tables') as t, jsonb_array_elements(t -> 'columns')
    where t ->> 'name' = 'orders'
  ),
  (
    select count(*)::int from pg_attribute
    where attrelid = 'public.orders'::regclass and attnum > 0 and not attisdropped
  ),
  'orders lists every column of the table'
);
select ok(
  (
    select bool_and((c ->> 'system')::boolean = (c ->> 'name' = any(shopsync.system_columns())))
    from jsonb_array_elements((:'s'::jsonb) -> 'tables') as t, jsonb_array_elements(t -> 'columns') as c
  ),
  'server-written columns are flagged system'
);

-- TEST: viewers may read the schema (they build local tables too)
call tests.authenticate_as('viewer@shop-a.test');
select is(
  jsonb_array_length(public.sync_schema() -> 'tables'), 8, 'a viewer gets the schema'
);

select * from finish();
rollback;
