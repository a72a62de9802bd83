-- Orders and their items, synced (policy manual: a concurrent change is a conflict for the device
-- to resolve). The status rule lives here: it moves forward only, on every write path.

create table public.orders (
  id uuid primary key,
  shop_id uuid not null references public.shops (id),
  order_code text check (length(order_code) <= 40),
  customer_id uuid,
  status text not null default 'pending'
  check (status in ('pending', 'paid', 'shipping', 'delivered', 'cancelled')),
  total numeric(12, 2) not null default 0 check (total >= 0),
  unique (shop_id, id),
  foreign key (shop_id, customer_id) references public.customers (shop_id, id)
);
create index orders_shop_id_customer_id_idx on public.orders (shop_id, customer_id);

create table public.order_items (
  id uuid primary key,
  shop_id uuid not null references public.shops (id),
  order_id uuid not null,
  product_id uuid,
  quantity numeric(12, 3) not null check (quantity > 0),
  unit_price numeric(12, 2) not null check (unit_price >= 0),
  foreign key (shop_id, order_id) references public.orders (shop_id, id),
  foreign key (shop_id, product_id) references public.products (shop_id, id)
);
create index order_items_shop_id_order_id_idx on public.order_items (shop_id, order_id);
create index order_items_shop_id_product_id_idx on public.order_items (shop_id, product_id);

-- Order status moves forward only: pending -> paid -> shipping -> delivered; cancel from pending or
-- paid. Direct table writes are checked here; sync_push checks set-wise before applying and lets
-- an owner override explicitly.
create or replace function shopsync.order_transition_ok(p_from text, p_to text)
returns boolean
language sql
immutable
set search_path = ''
as $$
  select p_from = p_to
    or (p_to = 'cancelled' and p_from in ('pending', 'paid'))
    or (
      p_to <> 'cancelled' and p_from <> 'cancelled'
      and array_position(array['pending', 'paid', 'shipping', 'delivered'], p_to)
      > array_position(array['pending', 'paid', 'shipping', 'delivered'], p_from)
    )
$$;

create or replace function shopsync.check_order_transition()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if current_setting('shopsync.in_push', true) = 'on' then
    return new;  -- validated (with the owner override) by sync_push
  end if;
  if not shopsync.order_transition_ok(old.status, new.status) then
    raise exception 'order status cannot move from % to %', old.status, new.status
      using errcode = 'SS003', hint = 'invalid_transition';
  end if;
  return new;
end;
$$;

create trigger orders_status_forward_only before update of status on public.orders
for each row execute function shopsync.check_order_transition();

-- The same rule inside a push, set-wise over the batch (orders' validator in the synced-table
-- registry); an owner may override it by setting "override": true on the event.
create or replace function shopsync.validate_orders(p_shop uuid, p_role text, p_round int)
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform 'PRAGMA:TABLE: push_events (like shopsync.push_event)';  -- for plpgsql_check
  execute $q$
    update pg_temp.push_events as e
    set status = 'rejected', reason = 'invalid_transition',
        message = format('order status cannot move from %s to %s', o.status, e.data ->> 'status')
    from public.orders as o
    where e.tbl = 'orders' and e.rnd = $1 and e.status in ('go', 'stale') and e.op = 'update'
      and o.id = e.row_id and o.shop_id = $2
      and e.data ? 'status'
      and not shopsync.order_transition_ok(o.status, e.data ->> 'status')
      and not (e.override and $3 = 'owner')
  $q$ using p_round, p_shop, p_role;
end;
$$;

select shopsync.register_table('public.orders', 'manual', array['owner', 'staff'], 40, 'shopsync.validate_orders');
select shopsync.register_table('public.order_items', 'manual', array['owner', 'staff'], 50);
