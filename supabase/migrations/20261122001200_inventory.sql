-- Stock: append-only movements synced from devices; levels derived from them by the server.
-- Two tills selling the same product offline both count: each sale is its own movement, and the
-- level is their sum, so there is nothing to conflict over.

create table public.stock_movements (
  id uuid primary key,
  shop_id uuid not null references public.shops (id),
  product_id uuid not null,
  delta numeric(12, 3) not null check (delta <> 0),
  reason text not null check (reason in ('sale', 'restock', 'adjustment', 'return')),
  ref_id uuid,
  device_id uuid,
  unique (shop_id, id),
  foreign key (shop_id, product_id) references public.products (shop_id, id)
);
create index stock_movements_shop_id_product_id_idx on public.stock_movements (shop_id, product_id);
comment on table public.stock_movements is 'Append-only stock changes; inventory_levels is their sum per product.';

-- Sales reduce stock, restocks and returns add to it; an adjustment may go either way.
alter table public.stock_movements add constraint stock_movements_sign_check check (
  (reason = 'sale' and delta < 0) or (reason in ('restock', 'return') and delta > 0) or reason = 'adjustment'
);

create table public.inventory_levels (
  id uuid primary key,
  shop_id uuid not null references public.shops (id),
  product_id uuid not null,
  on_hand numeric(14, 3) not null default 0,
  unique (shop_id, product_id),
  foreign key (shop_id, product_id) references public.products (shop_id, id),
  check (id = product_id)
);
comment on table public.inventory_levels is
'Stock on hand per product, derived from stock_movements by trigger; never written by clients. id = product_id.';

create or replace function shopsync.stamp_movement_device()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.device_id := coalesce(nullif(current_setting('shopsync.device_id', true), '')::uuid, new.device_id);
  return new;
end;
$$;

-- Set-wise: one upsert per statement of movements, whatever its size.
create or replace function shopsync.apply_movements()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into public.inventory_levels as l (id, shop_id, product_id, on_hand)
  select m.product_id, m.shop_id, m.product_id, sum(m.delta)
  from new_rows as m
  group by m.shop_id, m.product_id
  order by m.product_id
  on conflict (id) do update set on_hand = l.on_hand + excluded.on_hand;
  return null;
end;
$$;

create trigger stock_movements_device before insert on public.stock_movements
for each row execute function shopsync.stamp_movement_device();
create trigger stock_movements_append_only before update or delete on public.stock_movements
for each row execute function shopsync.refuse_change();
create trigger stock_movements_apply after insert on public.stock_movements
referencing new table as new_rows
for each statement execute function shopsync.apply_movements();

select shopsync.register_table('public.stock_movements', 'append_only', array['owner', 'staff'], 70);
select shopsync.register_table('public.inventory_levels', 'server_only', array[]::text[], 80);
