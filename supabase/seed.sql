-- Seed for local development and tests: two shops, their licences and people, a small catalog.
-- Fixed ids so tests and docs can name them. Every user's password is "password".

insert into auth.users (
  instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
  raw_app_meta_data, raw_user_meta_data, created_at, updated_at
)
select
  '00000000-0000-0000-0000-000000000000'::uuid as instance_id,
  u.id::uuid as id,
  'authenticated' as aud,
  'authenticated' as role,
  u.email,
  extensions.crypt('password', extensions.gen_salt('bf', 4)) as encrypted_password,
  now() as email_confirmed_at,
  '{"provider": "email", "providers": ["email"]}'::jsonb as raw_app_meta_data,
  jsonb_build_object('name', u.name) as raw_user_meta_data,
  now() as created_at,
  now() as updated_at
from (
  values
  ('a0000000-0000-4000-8000-000000000001', 'owner@shop-a.test', 'Olivia Owner'),
  ('a0000000-0000-4000-8000-000000000002', 'staff@shop-a.test', 'Sam Staff'),
  ('a0000000-0000-4000-8000-000000000003', 'viewer@shop-a.test', 'Vic Viewer'),
  ('b0000000-0000-4000-8000-000000000001', 'owner@shop-b.test', 'Bea Owner'),
  ('b0000000-0000-4000-8000-000000000002', 'staff@shop-b.test', 'Ben Staff')
) as u (id, email, name);

insert into public.shops (id, name) values
('aaaaaaaa-0000-4000-8000-000000000000', 'Shop A'),
('bbbbbbbb-0000-4000-8000-000000000000', 'Shop B');

insert into public.licenses (shop_id, plan, max_devices, valid_until) values
('aaaaaaaa-0000-4000-8000-000000000000', 'standard', 5, now() + interval '1 year'),
('bbbbbbbb-0000-4000-8000-000000000000', 'standard', 3, now() + interval '1 year');

insert into public.shop_members (shop_id, user_id, role) values
('aaaaaaaa-0000-4000-8000-000000000000', 'a0000000-0000-4000-8000-000000000001', 'owner'),
('aaaaaaaa-0000-4000-8000-000000000000', 'a0000000-0000-4000-8000-000000000002', 'staff'),
('aaaaaaaa-0000-4000-8000-000000000000', 'a0000000-0000-4000-8000-000000000003', 'viewer'),
('bbbbbbbb-0000-4000-8000-000000000000', 'b0000000-0000-4000-8000-000000000001', 'owner'),
('bbbbbbbb-0000-4000-8000-000000000000', 'b0000000-0000-4000-8000-000000000002', 'staff');

-- A small catalog per shop (deterministic ids from the sku).
insert into public.products (id, shop_id, sku, name, price, tax_rate)
select
  extensions.uuid_generate_v5('6ba7b811-9dad-11d1-80b4-00c04fd430c8'::uuid, s.id::text || '/' || p.sku) as id,
  s.id as shop_id,
  p.sku,
  p.name,
  p.price,
  p.tax_rate
from public.shops as s
cross join (
  values
  ('COF-250', 'Coffee beans 250 g', 8.90, 7.00),
  ('TEA-100', 'Green tea 100 g', 5.50, 7.00),
  ('MUG-01', 'Mug', 12.00, 19.00),
  ('CUP-PAPER', 'Paper cups (50)', 4.25, 19.00),
  ('GIFT-10', 'Gift card 10', 10.00, 0.00)
) as p (sku, name, price, tax_rate);

insert into public.customers (id, shop_id, customer_code, name, email)
select
  extensions.uuid_generate_v5('6ba7b811-9dad-11d1-80b4-00c04fd430c8'::uuid, s.id::text || '/' || c.code) as id,
  s.id as shop_id,
  c.code,
  c.name,
  c.email
from public.shops as s
cross join (
  values
  ('C-0001', 'Ada Lovelace', 'ada@example.test'),
  ('C-0002', 'Grace Hopper', 'grace@example.test')
) as c (code, name, email);

insert into public.shop_settings (id, shop_id, key, value)
select
  extensions.uuid_generate_v5('6ba7b811-9dad-11d1-80b4-00c04fd430c8'::uuid, s.id::text || '/currency') as id,
  s.id as shop_id,
  'currency' as key,
  '"EUR"'::jsonb as value
from public.shops as s;
