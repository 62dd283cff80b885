-- An erased conversation's flow is over (actors/state.ts ends it: it owes no call and no timer):
-- flow_runs says `erased` for one that had not ended, and flow_backend_calls `cancelled` for a
-- call it had not finished, instead of `running` and `pending` for ever.
CREATE OR REPLACE VIEW flow_runs AS
  SELECT s.conversation_id,
         s.data->>'flowId' AS flow_id,
         s.data->>'version' AS version,
         s.occurred_at AS started_at,
         cur.task AS current_task,
         COALESCE(e.data->>'reason', CASE WHEN z.seq IS NOT NULL THEN 'erased' END, 'running') AS status,
         x.data->>'to' AS handed_over_to,
         COALESCE(e.occurred_at, z.occurred_at) AS ended_at
  FROM events s
  LEFT JOIN LATERAL (
    SELECT t.data->>'task' AS task FROM events t
    WHERE t.conversation_id = s.conversation_id AND t.type = 'TaskStarted' ORDER BY t.seq DESC LIMIT 1
  ) cur ON true
  LEFT JOIN events e ON e.conversation_id = s.conversation_id AND e.type = 'FlowEnded'
  LEFT JOIN events x ON x.conversation_id = s.conversation_id AND x.type = 'FlowTransferred'
  LEFT JOIN events z ON z.conversation_id = s.conversation_id AND z.type = 'ConversationErased'
  WHERE s.type = 'FlowStarted';

CREATE OR REPLACE VIEW flow_backend_calls AS
  SELECT b.conversation_id,
         b.data->>'task' AS task,
         b.data->>'kind' AS kind,
         b.data->>'backend' AS backend,
         b.data->>'key' AS idempotency_key,
         b.data->>'status' AS status,
         (b.data->>'httpStatus')::int AS http_status,
         (b.data->>'attempts')::int AS attempts,
         (b.data->>'latencyMs')::float8 AS latency_ms,
         b.data->>'error' AS error,
         t.occurred_at AS started_at,
         b.occurred_at AS finished_at
  FROM events b
  LEFT JOIN events t ON t.conversation_id = b.conversation_id AND t.type = 'TaskStarted' AND t.data->>'key' = b.data->>'key'
  WHERE b.type = 'BackendCalled'
  UNION ALL
  SELECT t.conversation_id, t.data->>'task',
         CASE t.data->>'taskType' WHEN 'sendEmail' THEN 'email' WHEN 'sendSms' THEN 'sms' ELSE 'http' END,
         NULL, t.data->>'key',
         CASE WHEN EXISTS (SELECT 1 FROM events z WHERE z.conversation_id = t.conversation_id AND z.type = 'ConversationErased') THEN 'cancelled' ELSE 'pending' END,
         NULL, NULL, NULL, NULL, t.occurred_at, NULL
  FROM events t
  WHERE t.type = 'TaskStarted' AND t.data->>'key' IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM events b WHERE b.conversation_id = t.conversation_id AND b.type = 'BackendCalled' AND b.data->>'key' = t.data->>'key');
