"""What the Mend server and workers share: settings, the job model, the Redis store and
its Lua scripts, storage backends and image operations."""
