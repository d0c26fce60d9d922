"""The job state machine in Redis: key names, the Lua scripts that make every
transition, the job hash encoding, JobStore (clients' side), WorkQueue (workers' side)
and WebhookQueue (webhook deliveries)."""
