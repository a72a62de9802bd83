-- The shop's catalog and settings, synced: customers, products, shop settings.
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

create table public.shop_settings (
  id uuid primary key,
  shop_id uuid not null references public.shops (id),
  key text not null check (length(key) between 1 and 100),
  value jsonb
);

select shopsync.register_table('public.shop_settings', 'server_wins', array['owner'], 10);
select shopsync.register_table('public.customers', 'last_write_wins', array['owner', 'staff'], 20);
select shopsync.register_table('public.products', 'last_write_wins', array['owner', 'staff'], 30);

-- One live value per key and shop (needs deleted_at, added by register_table).
create unique index shop_settings_shop_id_key_idx on public.shop_settings (shop_id, key) where (deleted_at is null);
