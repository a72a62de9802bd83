-- The shop's synced data: customers, products, orders, order items, settings.
-- Ids are client-generated UUIDs. References carry shop_id too (composite foreign keys), so a row
-- can never point at another shop's row. Display codes are not keys.

create table public.customers (
  id uuid primary key,
  shop_id uuid not null references public.shops (id),
  customer_code text check (length(customer_code) <= 40),
  name text not null check (length(name) between 1 and 200),
  email text check (length(email) <= 320),
  phone text check (length(phone) <= 40),
  notes text check (length(notes) <= 4000),
  unique (shop_id, id)
);

create table public.products (
  id uuid primary key,
  shop_id uuid not null references public.shops (id),
  sku text not null check (length(sku) between 1 and 64),
  name text not null check (length(name) between 1 and 200),
  price numeric(12, 2) not null default 0 check (price >= 0),
  tax_rate numeric(5, 2) not null default 0 check (tax_rate >= 0 and tax_rate <= 100),
  active boolean not null default true,
  unique (shop_id, id)
);

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

create table public.shop_settings (
  id uuid primary key,
  shop_id uuid not null references public.shops (id),
  key text not null check (length(key) between 1 and 100),
  value jsonb
);

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

select shopsync.register_table('public.shop_settings', 'server_wins', array['owner'], 10);
select shopsync.register_table('public.customers', 'last_write_wins', array['owner', 'staff'], 20);
select shopsync.register_table('public.products', 'last_write_wins', array['owner', 'staff'], 30);
select shopsync.register_table('public.orders', 'manual', array['owner', 'staff'], 40, 'shopsync.validate_orders');
select shopsync.register_table('public.order_items', 'manual', array['owner', 'staff'], 50);

-- One live value per key and shop (needs deleted_at, added by register_table).
create unique index shop_settings_shop_id_key_idx on public.shop_settings (shop_id, key) where (deleted_at is null);
