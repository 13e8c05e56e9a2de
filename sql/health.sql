-- name: ping
SELECT 1;

-- name: applied_migration_ids
SELECT migration_id FROM _yoyo_migration ORDER BY migration_id;

-- name: upsert_worker_heartbeat
-- $1 worker_id, $2 hostname, $3 pid
INSERT INTO worker_heartbeats (worker_id, hostname, pid)
VALUES ($1, $2, $3)
ON CONFLICT (worker_id) DO UPDATE SET beat_at = now(), stopped_at = NULL;

-- name: mark_worker_stopped
UPDATE worker_heartbeats SET stopped_at = now() WHERE worker_id = $1;

-- name: freshest_worker_heartbeat
-- Age in seconds of the most recent beat of a running worker, with how many workers beat recently.
SELECT extract(epoch FROM now() - max(beat_at))::float8 AS age_s,
       count(*) FILTER (WHERE beat_at > now() - make_interval(secs => $1)) AS live_workers
FROM worker_heartbeats
WHERE stopped_at IS NULL;

-- name: prune_worker_heartbeats
DELETE FROM worker_heartbeats WHERE beat_at < now() - interval '1 day';
