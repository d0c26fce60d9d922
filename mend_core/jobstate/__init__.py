"""The job state machine in Redis, and the only code that touches its keys:

- keys: the key table (`KEYS`), for Python (`Keys`) and, generated, for Lua;
- scripts: the transitions (`TRANSITIONS`, one Lua script each in lua/) and their loader;
- encoding: the job hash (a job as a flat hash of strings) and the result JSON;
- store: `JobStore`, what clients' calls do (submit, get, list, cancel, events, stats),
  and Mend's own reads of any tenant's job or batch (webhook payloads);
- queue: `WorkQueue`, the workers' side (claim under a lease, heartbeat, finish, reap);
- webhook_queue: `WebhookQueue`, deliveries the scripts queue, their retries and dead letters.

Job states: pending -> processing -> completed | failed, with processing -> pending on a
retry, a release or an expired lease, and pending | processing -> cancelled."""
