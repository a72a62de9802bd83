-- Live sync (issue 15): after a transaction changes a shop's synced rows, one Supabase Realtime
-- Broadcast on the shop's private topic `shop:<shop_id>`, event `changed`, payload
-- {"cursor": <the shop's last_seq at commit>} (realtime.send adds an "id"). No row data: a device
-- that hears it pulls as usual, under RLS. Only the shop's active members may join the topic.
--
-- Once per transaction per shop: every change-log statement bumps shopsync.shop_cursor.last_seq, and
-- each bump queues a deferred constraint trigger event. At commit the first event of a shop sends
-- the final cursor and notes it in a transaction-local setting; the shop's other events find it
-- sent and return. The log_* triggers and push are unchanged.
--
-- Off switch (operators, the benchmark): alter table shopsync.shop_cursor disable trigger
-- shop_cursor_broadcast; devices then fall back to their poll interval.
--
-- Hosted Supabase has the realtime schema already; the local stack's bootstrap provides the same
-- realtime.messages, realtime.topic() and realtime.send(). realtime.send() never fails a commit: it
-- turns its own errors into a WARNING, as hosted Realtime defines it.

-- A live database: wait at most this long for a lock or a statement, then fail and retry later.
set local lock_timeout = '5s';
set local statement_timeout = '60s';

create or replace function shopsync.broadcast_shop_cursor()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  -- What this transaction has sent: '<shop_id>:<cursor>,' per shop.
  v_sent text := coalesce(current_setting('shopsync.live_sent', true), '');
  v_shop text := new.shop_id::text;
  v_last bigint;
begin
  select c.last_seq into v_last from shopsync.shop_cursor as c where c.shop_id = new.shop_id;
  -- Sent already, at this cursor or later: nothing new. (Only `set constraints ... immediate` fires
  -- events before commit; a later change then sends once more, with the newer cursor.)
  if v_last <= substring(v_sent from v_shop || ':([0-9]+),')::bigint then
    return null;
  end if;
  perform set_config('shopsync.live_sent',
                     regexp_replace(v_sent, v_shop || ':[0-9]+,', '') || v_shop || ':' || v_last || ',', true);
  if to_regprocedure('realtime.send(jsonb,text,text,boolean)') is null then
    return null;
  end if;
  perform realtime.send(jsonb_build_object('cursor', v_last), 'changed', 'shop:' || v_shop, true);
  return null;
end;
$$;

comment on function shopsync.broadcast_shop_cursor() is
'At commit: one Realtime Broadcast per shop per transaction on topic shop:<shop_id>, event changed, payload {cursor}.';

create constraint trigger shop_cursor_broadcast
after update of last_seq on shopsync.shop_cursor
deferrable initially deferred
for each row
when (new.last_seq is distinct from old.last_seq)
execute function shopsync.broadcast_shop_cursor();

-- Realtime Authorization: a private channel join is allowed when this policy lets the joining user
-- read a probe row of the topic (Realtime runs the select with the user's role and claims and
-- realtime.topic() set to the topic). Active members of the shop only; a revoked member is refused
-- at the next join or token refresh. No insert policy: clients cannot broadcast on the topic.
create policy shop_members_receive_their_shops_changes on realtime.messages
for select to authenticated
using (
  realtime.messages.extension = 'broadcast'
  and (select realtime.topic()) = 'shop:' || (select shopsync.current_shop_id())::text
);

revoke execute on function shopsync.broadcast_shop_cursor() from public, anon, authenticated, service_role;
