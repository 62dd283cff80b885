-- Flows (DESIGN §8) for analysts: views over the events table, so they are rebuilt with it
-- and erasure empties what they show of a person (values read, backend results).

-- Where each flow conversation is, and how it ended: running, completed, transferred
-- (handed over to an operator), gave_up (a data node's retries ran out) or error.
CREATE VIEW flow_runs AS
  SELECT s.conversation_id,
         s.data->>'flowId' AS flow_id,
         s.data->>'version' AS version,
         s.occurred_at AS started_at,
         cur.task AS current_task,
         COALESCE(e.data->>'reason', 'running') AS status,
         x.data->>'to' AS handed_over_to,
         e.occurred_at AS ended_at
  FROM events s
  LEFT JOIN LATERAL (
    SELECT t.data->>'task' AS task FROM events t
    WHERE t.conversation_id = s.conversation_id AND t.type = 'TaskStarted' ORDER BY t.seq DESC LIMIT 1
  ) cur ON true
  LEFT JOIN events e ON e.conversation_id = s.conversation_id AND e.type = 'FlowEnded'
  LEFT JOIN events x ON x.conversation_id = s.conversation_id AND x.type = 'FlowTransferred'
  WHERE s.type = 'FlowStarted';

-- Every value read out of an answer, per data node, and by which reader (parser or model);
-- `confirmed`: the user confirmed that value for the node afterwards.
CREATE VIEW flow_values AS
  SELECT v.conversation_id,
         v.seq,
         v.data->>'task' AS task,
         v.data->>'node' AS node,
         v.data->'value' AS value,
         v.data->>'by' AS read_by,
         (v.data->>'partial')::boolean AS partial,
         EXISTS (
           SELECT 1 FROM events c
           WHERE c.conversation_id = v.conversation_id AND c.type = 'DataConfirmed' AND c.seq > v.seq
             AND c.data->'flow'->>'node' = v.data->>'node'
             AND (SELECT d.value FROM jsonb_each(c.data->'data') d LIMIT 1) = v.data->'value'
         ) AS confirmed,
         v.occurred_at AS read_at
  FROM events v
  WHERE v.type = 'ValueRead';

-- Backend calls, emails and SMS a flow made, with their status; `pending`: started, no outcome yet.
CREATE VIEW flow_backend_calls AS
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
         NULL, t.data->>'key', 'pending', NULL, NULL, NULL, NULL, t.occurred_at, NULL
  FROM events t
  WHERE t.type = 'TaskStarted' AND t.data->>'key' IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM events b WHERE b.conversation_id = t.conversation_id AND b.type = 'BackendCalled' AND b.data->>'key' = t.data->>'key');
