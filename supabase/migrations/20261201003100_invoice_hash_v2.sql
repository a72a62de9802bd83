-- Invoices (hardening, issue 12 finding 10, item 9).
--
-- Before: the hash (canonical form v1) left out the invoice's id and device_id, and lines could
-- carry extra keys that no hash covered; verify_invoice_chain answered `ok` to a caller without an
-- active membership (no shop: no rows, so nothing broken). Now:
--   * canonical form v2 covers every stored field of an invoice (id, device_id, hash_version
--     included) and of its lines; lines carry only the keys the form knows (others:
--     invalid_lines). New invoices must be v2 (hash_version 2, the column's default);
--   * v1 chains still verify: shopsync.invoice_series.v2_from is, per series, the first number
--     that must be v2 (the next number at this migration for existing series, 1 for new ones), so
--     turning a v2 invoice's hash_version back to 1 is caught (version_downgrade);
--   * verify_invoice_chain answers only an active member, for their shop (PT403 not_a_member).

-- A live database: wait at most this long for a lock or a statement, then fail and retry later.
set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- Existing invoices are v1; new ones v2. (A constant default: no table rewrite.)
alter table public.invoices add column hash_version bigint not null default 1 check (hash_version in (1, 2));
alter table public.invoices alter column hash_version set default 2;
comment on column public.invoices.hash_version is
'Canonical form of the hash: 1 (before v0.2, id/device_id/extra line keys not covered) or 2.';

alter table shopsync.invoice_series add column v2_from bigint not null default 1;
update shopsync.invoice_series as s
set v2_from = coalesce((
  select max(i.number) from public.invoices as i
  where i.shop_id = s.shop_id and i.series = s.series
), 0) + 1;

-- Canonical form v2 of an invoice row (as jsonb): a JSON array of strings, as v1, with the id,
-- device_id and hash_version added.
create or replace function shopsync.invoice_canonical_v2(p_inv jsonb)
returns text
language sql
immutable
set search_path = ''
as $$
  select jsonb_build_array(
    'shopsync-invoice-v2',
    p_inv ->> 'id',
    p_inv ->> 'shop_id',
    coalesce(p_inv ->> 'device_id', ''),
    p_inv ->> 'series',
    p_inv ->> 'number',
    to_char((p_inv ->> 'issued_at')::timestamptz at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    coalesce(p_inv ->> 'kind', 'invoice'),
    coalesce(p_inv ->> 'refers_to', ''),
    coalesce(p_inv ->> 'customer_id', ''),
    coalesce(p_inv ->> 'currency', 'EUR'),
    round((p_inv ->> 'subtotal')::numeric, 2)::text,
    round((p_inv ->> 'tax')::numeric, 2)::text,
    round((p_inv ->> 'total')::numeric, 2)::text,
    coalesce((
      select jsonb_agg(jsonb_build_array(
        coalesce(l.value ->> 'product_id', ''),
        l.value ->> 'description',
        round((l.value ->> 'quantity')::numeric, 3)::text,
        round((l.value ->> 'unit_price')::numeric, 2)::text,
        round((l.value ->> 'tax_rate')::numeric, 2)::text
      ) order by l.ordinality)
      from jsonb_array_elements(p_inv -> 'lines') with ordinality as l (value, ordinality)
    ), '[]'::jsonb),
    p_inv ->> 'prev_hash'
  )::text
$$;

-- The hash an invoice row must carry, by its hash_version.
create or replace function shopsync.invoice_row_hash(p_inv public.invoices)
returns text
language sql
stable
set search_path = ''
as $$
  select shopsync.invoice_hash(case when p_inv.hash_version = 1
    then shopsync.invoice_canonical(
      p_inv.shop_id, p_inv.series, p_inv.number, p_inv.issued_at, p_inv.kind, p_inv.refers_to, p_inv.customer_id,
      p_inv.currency, p_inv.subtotal, p_inv.tax, p_inv.total, p_inv.lines, p_inv.prev_hash)
    else shopsync.invoice_canonical_v2(to_jsonb(p_inv)) end)
$$;

-- As before (20261122001100_invoices.sql), plus: lines carry only known keys, new invoices are v2
-- and hashed in the v2 form.
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
  if not shopsync.invoice_lines_valid(new.lines) or exists (
    select from jsonb_array_elements(new.lines) as l (value)
    cross join lateral jsonb_object_keys(l.value) as k (key)
    where k.key not in ('product_id', 'description', 'quantity', 'unit_price', 'tax_rate')
  ) then
    raise exception 'invoice lines must be 1 to 500 objects with description, quantity, unit_price, tax_rate[, product_id] and nothing else'
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
  if new.hash_version is distinct from 2 or new.hash <> shopsync.invoice_row_hash(new) then
    raise exception 'invoice %-% hash does not match its content (canonical form v2)', new.series, new.number
      using errcode = 'SS105', hint = 'hash_mismatch';
  end if;
  return new;
end;
$$;

-- As before, with each invoice hashed by its version, and v2 required from the series' v2_from.
create or replace function shopsync.verify_chain(p_shop uuid, p_series text)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_inv public.invoices;
  v_expected_number bigint := 1;
  v_expected_prev text := shopsync.invoice_genesis_hash();
  v_count bigint := 0;
  v_v2_from bigint;
begin
  select s.v2_from into v_v2_from from shopsync.invoice_series as s where s.shop_id = p_shop and s.series = p_series;
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
    if v_inv.hash_version < 2 and v_inv.number >= coalesce(v_v2_from, 1) then
      return jsonb_build_object('ok', false, 'series', p_series, 'number', v_inv.number,
        'invoice_id', v_inv.id, 'reason', 'version_downgrade', 'checked', v_count);
    end if;
    if v_inv.hash <> shopsync.invoice_row_hash(v_inv) then
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

-- The caller's own shop only, and only for an active member.
create or replace function shopsync.verify_my_chain(p_series text)
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  select shopsync.verify_chain(m.shop_id, p_series) from shopsync.require_member() as m
$$;

-- Privileges of this capability's objects.
revoke execute on function shopsync.invoice_canonical_v2(jsonb) from public, anon, authenticated, service_role;
revoke execute on function shopsync.invoice_row_hash(public.invoices) from public, anon, authenticated, service_role;
