-- Fiscal invoices: append-only for every role, numbered gaplessly per series (a series belongs to
-- one device, so devices number offline without colliding), and hash-chained: each invoice's hash
-- covers its canonical serialization and the previous invoice's hash (README, "Invoices").

create table public.invoices (
  id uuid primary key,
  shop_id uuid not null references public.shops (id),
  device_id uuid,
  series text not null check (series ~ '^[A-Za-z0-9_-]{1,32}$'),
  number bigint not null check (number >= 1),
  issued_at timestamptz not null,
  customer_id uuid,
  lines jsonb not null,
  subtotal numeric(12, 2) not null,
  tax numeric(12, 2) not null,
  total numeric(12, 2) not null,
  currency text not null default 'EUR' check (currency ~ '^[A-Z]{3}$'),
  kind text not null default 'invoice' check (kind in ('invoice', 'credit_note')),
  refers_to uuid,
  prev_hash text not null check (prev_hash ~ '^[0-9a-f]{64}$'),
  hash text not null check (hash ~ '^[0-9a-f]{64}$'),
  unique (shop_id, series, number),
  unique (shop_id, id),
  foreign key (shop_id, customer_id) references public.customers (shop_id, id),
  foreign key (shop_id, refers_to) references public.invoices (shop_id, id),
  check ((kind = 'credit_note') = (refers_to is not null))
);
create index invoices_shop_id_customer_id_idx on public.invoices (shop_id, customer_id);
create index invoices_shop_id_refers_to_idx on public.invoices (shop_id, refers_to);
comment on table public.invoices is
'Fiscal documents. Never updated or deleted by anyone; a cancellation is a credit note referring to the original.';

-- Which device numbers which series.
create table shopsync.invoice_series (
  shop_id uuid not null references public.shops (id),
  series text not null,
  device_id uuid not null,
  created_at timestamptz not null default now(),
  primary key (shop_id, series)
);

create or replace function shopsync.invoice_genesis_hash()
returns text
language sql
immutable
set search_path = ''
as $$
  select repeat('0', 64)
$$;

-- The canonical serialization: a JSON array of strings (numbers as fixed-point text, timestamps as
-- UTC ISO-8601 with microseconds), rendered as Postgres renders jsonb text: ", " between items.
create or replace function shopsync.invoice_canonical(
  p_shop_id uuid, p_series text, p_number bigint, p_issued_at timestamptz, p_kind text, p_refers_to uuid,
  p_customer_id uuid, p_currency text, p_subtotal numeric, p_tax numeric, p_total numeric, p_lines jsonb,
  p_prev_hash text
)
returns text
language sql
immutable
set search_path = ''
as $$
  select jsonb_build_array(
    'shopsync-invoice-v1',
    p_shop_id::text,
    p_series,
    p_number::text,
    to_char(p_issued_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    p_kind,
    coalesce(p_refers_to::text, ''),
    coalesce(p_customer_id::text, ''),
    p_currency,
    round(p_subtotal, 2)::text,
    round(p_tax, 2)::text,
    round(p_total, 2)::text,
    coalesce((
      select jsonb_agg(jsonb_build_array(
        coalesce(l.value ->> 'product_id', ''),
        l.value ->> 'description',
        round((l.value ->> 'quantity')::numeric, 3)::text,
        round((l.value ->> 'unit_price')::numeric, 2)::text,
        round((l.value ->> 'tax_rate')::numeric, 2)::text
      ) order by l.ordinality)
      from jsonb_array_elements(p_lines) with ordinality as l (value, ordinality)
    ), '[]'::jsonb),
    p_prev_hash
  )::text
$$;

create or replace function shopsync.invoice_hash(p_canonical text)
returns text
language sql
immutable
set search_path = ''
as $$
  select encode(extensions.digest(convert_to(p_canonical, 'UTF8'), 'sha256'), 'hex')
$$;

-- Lines: a non-empty array of {description, quantity, unit_price, tax_rate[, product_id]}.
-- One query per invoice, with the value checks inlined (see shopsync.value_check_sql).
create or replace function shopsync.invoice_lines_valid(p_lines jsonb)
returns boolean
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_ok boolean;
begin
  if jsonb_typeof(p_lines) is distinct from 'array' or jsonb_array_length(p_lines) not between 1 and 500 then
    return false;
  end if;
  execute format(
    'select not exists (select 1 from jsonb_array_elements($1) as l (value) where jsonb_typeof(l.value) <> ''object'''
    || ' or l.value ->> ''description'' is null or l.value ->> ''quantity'' is null'
    || ' or l.value ->> ''unit_price'' is null or l.value ->> ''tax_rate'' is null'
    || ' or not %s or not %s or not %s or not %s or not %s)',
    shopsync.value_check_sql('(l.value -> ''description'')', '''text'''),
    shopsync.value_check_sql('(l.value -> ''quantity'')', '''numeric(12,3)'''),
    shopsync.value_check_sql('(l.value -> ''unit_price'')', '''numeric(12,2)'''),
    shopsync.value_check_sql('(l.value -> ''tax_rate'')', '''numeric(5,2)'''),
    shopsync.value_check_sql('(l.value -> ''product_id'')', '''uuid''')
  ) into v_ok using p_lines;
  return v_ok;
end;
$$;

create or replace function shopsync.check_invoice()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_device uuid := nullif(current_setting('shopsync.device_id', true), '')::uuid;
  v_owner uuid;
  v_prev_number bigint;
  v_prev_hash text;
  v_subtotal numeric;
  v_tax numeric;
begin
  if v_device is not null then
    new.device_id := v_device;
  end if;
  if new.device_id is null then
    raise exception 'an invoice needs the device that issued it' using errcode = 'SS104', hint = 'series_taken';
  end if;
  insert into shopsync.invoice_series (shop_id, series, device_id)
  values (new.shop_id, new.series, new.device_id)
  on conflict do nothing;
  select s.device_id into v_owner from shopsync.invoice_series as s
  where s.shop_id = new.shop_id and s.series = new.series;
  if v_owner <> new.device_id then
    raise exception 'series % is numbered by another device', new.series using errcode = 'SS104', hint = 'series_taken';
  end if;

  select i.number, i.hash into v_prev_number, v_prev_hash
  from public.invoices as i
  where i.shop_id = new.shop_id and i.series = new.series
  order by i.number desc
  limit 1;
  if new.number <> coalesce(v_prev_number, 0) + 1 then
    raise exception 'invoice %-% breaks the numbering: the next number is %', new.series, new.number,
      coalesce(v_prev_number, 0) + 1 using errcode = 'SS101', hint = 'number_gap';
  end if;
  if new.prev_hash <> coalesce(v_prev_hash, shopsync.invoice_genesis_hash()) then
    raise exception 'invoice %-% does not chain to the previous invoice''s hash', new.series, new.number
      using errcode = 'SS102', hint = 'chain_broken';
  end if;
  if not shopsync.invoice_lines_valid(new.lines) then
    raise exception 'invoice lines must be 1 to 500 objects with description, quantity, unit_price, tax_rate'
      using errcode = 'SS106', hint = 'invalid_lines';
  end if;
  select
    sum(round((l.value ->> 'quantity')::numeric * (l.value ->> 'unit_price')::numeric, 2)),
    sum(round(round((l.value ->> 'quantity')::numeric * (l.value ->> 'unit_price')::numeric, 2)
              * (l.value ->> 'tax_rate')::numeric / 100, 2))
  into v_subtotal, v_tax
  from jsonb_array_elements(new.lines) as l (value);
  if new.subtotal <> v_subtotal or new.tax <> v_tax or new.total <> new.subtotal + new.tax then
    raise exception 'invoice totals do not match its lines (subtotal %, tax %, total %)', v_subtotal, v_tax,
      v_subtotal + v_tax using errcode = 'SS103', hint = 'totals_mismatch';
  end if;
  if new.hash <> shopsync.invoice_hash(shopsync.invoice_canonical(
    new.shop_id, new.series, new.number, new.issued_at, new.kind, new.refers_to, new.customer_id, new.currency,
    new.subtotal, new.tax, new.total, new.lines, new.prev_hash
  )) then
    raise exception 'invoice %-% hash does not match its content', new.series, new.number
      using errcode = 'SS105', hint = 'hash_mismatch';
  end if;
  return new;
end;
$$;

create trigger invoices_check before insert on public.invoices
for each row execute function shopsync.check_invoice();
-- Named to fire before register_table's zz_ triggers.
create trigger invoices_append_only before update or delete on public.invoices
for each row execute function shopsync.refuse_change();
create trigger invoices_no_truncate before truncate on public.invoices
for each statement execute function shopsync.refuse_change();

select shopsync.register_table('public.invoices', 'append_only', array['owner', 'staff'], 60);
-- (No role may update, delete or truncate invoices: the privileges migration revokes it too.)

-- The same chain check for anyone to run: ok, or the first broken link and why.
create or replace function shopsync.verify_chain(p_shop uuid, p_series text)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_inv record;
  v_expected_number bigint := 1;
  v_expected_prev text := shopsync.invoice_genesis_hash();
  v_count bigint := 0;
begin
  for v_inv in
    select * from public.invoices as i where i.shop_id = p_shop and i.series = p_series order by i.number
  loop
    if v_inv.number <> v_expected_number then
      return jsonb_build_object('ok', false, 'series', p_series, 'number', v_expected_number,
        'invoice_id', null, 'reason', 'number_gap', 'checked', v_count);
    end if;
    if v_inv.prev_hash <> v_expected_prev then
      return jsonb_build_object('ok', false, 'series', p_series, 'number', v_inv.number,
        'invoice_id', v_inv.id, 'reason', 'chain_broken', 'checked', v_count);
    end if;
    if v_inv.hash <> shopsync.invoice_hash(shopsync.invoice_canonical(
      v_inv.shop_id, v_inv.series, v_inv.number, v_inv.issued_at, v_inv.kind, v_inv.refers_to, v_inv.customer_id,
      v_inv.currency, v_inv.subtotal, v_inv.tax, v_inv.total, v_inv.lines, v_inv.prev_hash
    )) then
      return jsonb_build_object('ok', false, 'series', p_series, 'number', v_inv.number,
        'invoice_id', v_inv.id, 'reason', 'hash_mismatch', 'checked', v_count);
    end if;
    v_count := v_count + 1;
    v_expected_number := v_inv.number + 1;
    v_expected_prev := v_inv.hash;
  end loop;
  return jsonb_build_object('ok', true, 'series', p_series, 'checked', v_count, 'last_hash', v_expected_prev);
end;
$$;

-- The caller's own shop only: the shop is never a parameter a client controls.
create or replace function shopsync.verify_my_chain(p_series text)
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  select shopsync.verify_chain(shopsync.current_shop_id(), p_series)
$$;

create or replace function public.verify_invoice_chain(p_series text)
returns jsonb
language sql
stable
set search_path = ''
as $$
  select shopsync.verify_my_chain(p_series)
$$;
comment on function public.verify_invoice_chain(text) is
'Check the caller''s shop''s invoice series: ok, or the first broken link (number, invoice_id, reason).';
