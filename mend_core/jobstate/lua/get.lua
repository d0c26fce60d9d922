-- Reads a job, and while it is pending what its queue estimate needs, in one round trip.
-- ARGV: prefix, id, tenant, worker liveness ms. Returns nil when the job is missing or
-- another tenant's; {fields} when it is not pending; else {fields, position (0-based
-- place in the claim order, -1 when not queued), queued, due_ms or '', live workers, now ms,
-- running {type, started_at, ...}, ahead {{count, mix}, ...}, stats}: `ahead` groups the
-- jobs that will be claimed before this one by tenant, each with its tenant's stats hash
-- (whose `<type>:pending` counts give the mix of types), or, when few jobs are ahead, their
-- types in claim order {{'exact', type, ...}}; `stats` holds `<type>:avg_ms`.
return read_job(ARGV[2], ARGV[3], tonumber(ARGV[4]))
